import time

import pytest

from nemo_encrl.speed import _best_pass


def test_best_pass_keeps_the_fastest_pass_per_audio_second():
    """A pass slowed down by another process must not count: the fastest of the repeats does."""
    delays = iter([0.0, 0.2, 0.2, 0.01, 0.01, 0.2, 0.2])  # warm-up, slow pass, fast pass, slow pass
    items = [(None, None, 2.0), (None, None, 3.0)]  # 5 s of audio
    rtf = _best_pass(lambda feats, lengths: time.sleep(next(delays)), items, repeats=3)
    assert 0.02 / 5 <= rtf < 0.1 / 5


def test_best_pass_refuses_zero_repeats():
    with pytest.raises(ValueError, match="speed.repeats"):
        _best_pass(lambda feats, lengths: None, [(None, None, 1.0)], repeats=0)
