"""Which student layer learns from which teacher layer (model.loss.hidden.pairs)."""

from __future__ import annotations

import math

from omegaconf import DictConfig


def proportional_layer_pairs(n_student: int, n_teacher: int) -> list[tuple[int, int]]:
    """Every student layer i paired with the teacher layer at the same relative depth, last with last.

    Hints on every layer keep each prefix of the student teacher-like, which is what cutting the
    stage-1 student to fewer layers in stage 2 relies on.
    """
    return [(i, math.ceil((i + 1) * n_teacher / n_student) - 1) for i in range(n_student)]


def hidden_layer_pairs(loss: DictConfig, n_student: int, n_teacher: int) -> list[tuple[int, int]]:
    """model.loss.hidden.pairs resolved to (student layer, teacher layer) pairs, checked against both depths."""
    hidden = loss.get("hidden", {}) or {}
    pairs = hidden.get("pairs", "auto")
    if not hidden.get("weight", 0):
        return []
    if pairs == "auto":
        resolved = proportional_layer_pairs(n_student, n_teacher)
    elif isinstance(pairs, str):
        raise ValueError(f"model.loss.hidden.pairs={pairs!r}: use auto or a list of [student_layer, teacher_layer]")
    else:
        resolved = [tuple(int(i) for i in p) for p in pairs]
    for i, j in resolved:
        if not (0 <= i < n_student and 0 <= j < n_teacher):
            raise ValueError(
                f"model.loss.hidden.pairs has [{i}, {j}]: student layers are 0..{n_student - 1}, teacher 0..{n_teacher - 1}"
            )
    return resolved
