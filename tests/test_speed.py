import time

import pytest

from nemo_encrl.speed import fastest_passes


def test_fastest_pass_per_audio_second_counts():
    """A pass slowed down by another process must not count: the fastest of the repeats does."""
    delays = iter([0.0, 0.2, 0.2, 0.01, 0.01, 0.2, 0.2])  # warm-up, slow pass, fast pass, slow pass
    items = [(None, None, 2.0), (None, None, 3.0)]  # 5 s of audio
    rtf = fastest_passes({"m": (lambda feats, lengths: time.sleep(next(delays)), items)}, repeats=3)["m"]
    assert 0.02 / 5 <= rtf < 0.1 / 5


def test_passes_of_several_models_take_turns():
    """Model and teacher are sampled over the same stretch of time, not one after the other."""
    calls = []
    items = [(None, None, 1.0)]
    runners = {k: (lambda feats, lengths, k=k: calls.append(k), items) for k in ("model", "teacher")}
    fastest_passes(runners, repeats=3)
    assert calls == ["model", "teacher"] + ["model", "teacher"] * 3  # warm-ups, then alternating passes


def test_zero_repeats_refused():
    with pytest.raises(ValueError, match="speed.repeats"):
        fastest_passes({"m": (lambda feats, lengths: None, [(None, None, 1.0)])}, repeats=0)
