"""Which teacher layer hints which student layer when `model.loss.hidden.pairs: auto`."""

import pytest

from nemo_encrl.losses import proportional_layer_pairs


@pytest.mark.parametrize(("n_student", "n_teacher", "expected"), [
    (6, 9, [(0, 1), (1, 2), (2, 4), (3, 5), (4, 7), (5, 8)]),
    (4, 9, [(0, 2), (1, 4), (2, 6), (3, 8)]),
    (3, 3, [(0, 0), (1, 1), (2, 2)]),
    (1, 16, [(0, 15)]),
])  # fmt: skip
def test_same_relative_depth_last_with_last(n_student, n_teacher, expected):
    assert proportional_layer_pairs(n_student, n_teacher) == expected


def test_deeper_student_than_teacher_stays_in_range():
    pairs = proportional_layer_pairs(12, 9)
    assert [i for i, _ in pairs] == list(range(12))
    assert all(0 <= j < 9 for _, j in pairs) and pairs[-1] == (11, 8)
    assert [j for _, j in pairs] == sorted(j for _, j in pairs)
