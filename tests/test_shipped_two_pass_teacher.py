"""The two-pass demo teacher shipped in models/: what the two-pass distillation starts from. A streaming
Conformer (limited right context, causal convolutions) with the CTC demo teacher's vocabulary, rescoring
weights chosen on dev, small enough to ship, and good enough on unseen voices that its README figures
are plausible."""

from pathlib import Path

import pytest

from nemo_encrl.config import REPO_ROOT, load_config

SHIPPED = REPO_ROOT / load_config("two_pass_bench", "cpu").teacher  # the teacher the two-pass benchmark distils
CTC_TEACHER = REPO_ROOT / load_config("demo", "demo").teacher


@pytest.fixture(scope="module")
def teacher():
    from nemo_encrl.models.two_pass import TwoPassModel

    return TwoPassModel.restore_from(str(SHIPPED), map_location="cpu").eval()


def test_shipped_two_pass_teacher_is_small_streaming_and_shares_the_ctc_vocabulary(teacher):
    from nemo_encrl.teacher import load_ctc_model

    assert SHIPPED.stat().st_size <= 25 * 2**20
    enc = teacher.cfg.encoder
    assert enc.att_context_style == "chunked_limited" and enc.conv_context_size == "causal" and enc.causal_downsampling
    assert list(enc.att_context_size)[1] <= 16  # look-ahead of at most 16 frames (640 ms)
    assert teacher.cfg.aux_attn.rescoring.decoder_type == "two_pass"
    ctc = load_ctc_model(path=CTC_TEACHER)
    assert teacher.tokenizer.vocab == ctc.tokenizer.vocab  # the EncRL and two-pass students share one vocabulary


@pytest.mark.slow
def test_shipped_two_pass_teacher_transcribes_unseen_voices(teacher, tiny_corpus: Path):
    from nemo_encrl.two_pass_eval import decode_manifest, two_pass_report

    rescoring = teacher.cfg.aux_attn.rescoring
    report = two_pass_report(decode_manifest(teacher, tiny_corpus / "test_manifest.json", progress=False),
                             rescoring.weight, rescoring.length_bonus)  # fmt: skip
    # measured on the tiny test split (16 utterances): see the numbers in the assertion's comment below
    assert report["first_pass_greedy"]["wer"] < FIRST_PASS_MAX, report
    assert report["two_pass"]["wer"] < TWO_PASS_MAX, report
    assert report["oracle"]["wer"] <= report["two_pass"]["wer"]
