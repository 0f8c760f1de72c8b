"""The teacher shipped in models/: a plain NeMo Conformer-CTC BPE model within the size the demo needs,
good enough on the tiny test split (unseen voices and sentences) that its README figure is plausible."""

from pathlib import Path

import pytest

from nemo_encrl.config import REPO_ROOT, load_config
from nemo_encrl.evaluate import evaluate_manifest
from nemo_encrl.teacher import load_ctc_model


SHIPPED_TEACHER = REPO_ROOT / load_config("demo", "demo").teacher  # the demo's teacher


def test_shipped_teacher_is_a_small_conformer_ctc_bpe():
    from nemo.collections.asr.models import EncDecCTCModelBPE

    assert SHIPPED_TEACHER.stat().st_size <= 25 * 2**20
    model = load_ctc_model(path=SHIPPED_TEACHER)
    assert type(model) is EncDecCTCModelBPE
    assert model.cfg.encoder._target_.endswith("ConformerEncoder") and model.cfg.encoder.subsampling_factor == 4
    assert 5e6 <= sum(p.numel() for p in model.parameters()) <= 15e6
    assert model.tokenizer.vocab_size == 256


@pytest.mark.slow
def test_shipped_teacher_transcribes_unseen_voices(tiny_corpus: Path):
    report = evaluate_manifest(load_ctc_model(path=SHIPPED_TEACHER), tiny_corpus / "test_manifest.json")
    # measured 31.0% WER (12.5% CER) for the phase-2 teacher of 2026-11-24 (the epoch-12 one: 40.3% / 13.6%);
    # a regression to the earlier teacher or worse fails this
    assert report["wer"] < 0.4 and report["cer"] < 0.16, report["examples"]
