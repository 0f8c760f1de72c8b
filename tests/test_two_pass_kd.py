"""Three-stage distillation of a two-pass model on the tiny corpus: each stage trains, saves a plain
TwoPassModel and resumes; the teacher stays frozen; stage 2 leaves the first pass bit-identical."""

import json
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

STAGES = {"rnnt": "kd_rnnt", "rescorer": "kd_rescorer", "deep": "kd_deep"}


def _cfg(stage, teacher, corpus, work, init=None, extra=()):
    from conftest import tiny_kd_overrides

    from nemo_encrl.config import load_config

    return load_config("two_pass", STAGES[stage], tiny_kd_overrides(stage, teacher, corpus, work, init) + list(extra))


@pytest.fixture(scope="module")
def stages(tiny_two_pass_nemo, tiny_corpus, tmp_path_factory) -> dict[str, Path]:
    from nemo_encrl.training import fit_two_pass_kd

    work = tmp_path_factory.mktemp("two_pass_kd")
    out, previous = {}, None
    for stage in STAGES:
        out[stage] = previous = fit_two_pass_kd(_cfg(stage, tiny_two_pass_nemo, tiny_corpus, work, previous))
    return out


def _state(path: Path) -> dict:
    from nemo_encrl.models.two_pass import TwoPassModel

    return TwoPassModel.restore_from(str(path), map_location="cpu").state_dict()


def test_each_stage_saves_a_plain_two_pass_student(stages):
    from nemo_encrl.models.two_pass import TwoPassModel

    for path in stages.values():
        model = TwoPassModel.restore_from(str(path), map_location="cpu")
        assert type(model) is TwoPassModel and "kd" not in model.cfg
        assert not [k for k in model.state_dict() if k.startswith(("teacher.", "kd_projection."))]
        assert model.cfg.encoder.d_model == 24


def test_rescorer_stage_leaves_the_first_pass_bit_identical(stages, tiny_corpus):
    before, after = _state(stages["rnnt"]), _state(stages["rescorer"])
    first_pass = [k for k in before if k.startswith(("preprocessor.", "encoder.", "decoder.", "joint."))]
    assert any("running_mean" in k for k in first_pass)  # BatchNorm statistics included
    for key in first_pass:
        assert torch.equal(before[key], after[key]), key
    attention = [k for k in before if k.startswith("attention.") and before[k].is_floating_point()]
    assert any(not torch.equal(before[k], after[k]) for k in attention)
    nbest = [json.loads(line) for line in (stages["rescorer"].parent / "nbest.jsonl").read_text().splitlines()]
    train = (tiny_corpus / "train_manifest.json").read_text().splitlines()
    assert len({row["id"] for row in nbest}) == len(nbest) == len(train)  # every train utterance, once
    assert all(1 <= len(row["nbest"]) <= 3 for row in nbest)
    deep = _state(stages["deep"])
    assert any(not torch.equal(after[k], deep[k]) for k in first_pass if after[k].is_floating_point())


def test_kd_terms_vanish_for_a_copy_of_the_teacher_and_the_teacher_stays_frozen(tiny_two_pass_nemo, tiny_corpus, tmp_path):
    from conftest import TINY_TWO_PASS_OVERRIDES

    from nemo_encrl.models.two_pass_kd import TwoPassKDModel
    from nemo_encrl.training import copy_tokenizer

    same_as_teacher = [o for o in TINY_TWO_PASS_OVERRIDES if o.startswith("model.") and "beam_size" not in o]
    cfg = _cfg("deep", tiny_two_pass_nemo, tiny_corpus, tmp_path, extra=[*same_as_teacher, "model.kd.encoder_mse=1.0",
                                                                           "model.kd.init_from=null"])  # fmt: skip
    copy_tokenizer(cfg)
    model = TwoPassKDModel(cfg=cfg.model)
    teacher_weights = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    for name in ("encoder", "decoder", "joint", "attention"):
        getattr(model, name).load_state_dict(getattr(model.teacher, name).state_dict())
    model.eval()  # no dropout: the copy must give the teacher's distributions exactly
    batch = next(iter(model._train_dl))
    terms = model.kd_losses(batch)
    assert terms["rnnt_kd"].item() == pytest.approx(0, abs=1e-5)
    assert terms["attention_kd"].item() == pytest.approx(0, abs=1e-5)
    model.train()
    assert not model.teacher.training and not any(p.requires_grad for p in model.teacher.parameters())
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    loss = sum(terms.values())
    loss.backward()
    optim.step()
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(value, teacher_weights[key]), key


@pytest.mark.parametrize("stage", list(STAGES))
def test_each_stage_resumes(stage, stages, tiny_two_pass_nemo, tiny_corpus, caplog):
    from nemo_encrl.training import fit_two_pass_kd

    work = stages[stage].parent
    init = {"rnnt": None, "rescorer": stages["rnnt"], "deep": stages["rescorer"]}[stage]
    fit_two_pass_kd(_cfg(stage, tiny_two_pass_nemo, tiny_corpus, work, init, ["trainer.max_steps=5"]))
    ckpt = next((work / stage / "runs").glob("*/checkpoints/*last.ckpt"))
    assert torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"] == 5
    assert "Restored all states from the checkpoint" in caplog.text


def test_wrong_inputs_are_named(tiny_two_pass_nemo, tiny_ctc_nemo, tiny_corpus, tmp_path):
    from nemo_encrl.teacher import TeacherError
    from nemo_encrl.tokenizer import train_bpe_tokenizer
    from nemo_encrl.training import fit_two_pass_kd

    with pytest.raises(TeacherError, match=r"two-pass teacher .* is a EncDecCTCModelBPE, not a TwoPassModel"):
        fit_two_pass_kd(_cfg("rnnt", tiny_ctc_nemo, tiny_corpus, tmp_path / "a"))
    other = train_bpe_tokenizer([tiny_corpus / "train_manifest.json"], tmp_path / "other_tokenizer", vocab_size=30)
    with pytest.raises(ValueError, match=r"model.kd.teacher.path=.*its tokenizer \(\d+ pieces\) differs from the student"):
        fit_two_pass_kd(_cfg("rnnt", tiny_two_pass_nemo, tiny_corpus, tmp_path / "b", extra=[f"model.tokenizer.dir={other}"]))
    with pytest.raises(ValueError, match=r"model.preprocessor.features: the student's features differ from the teacher"):
        fit_two_pass_kd(_cfg("rnnt", tiny_two_pass_nemo, tiny_corpus, tmp_path / "e", extra=["model.preprocessor.features=64"]))
    with pytest.raises(ValueError, match="model.kd.stage='distill'"):
        fit_two_pass_kd(_cfg("rnnt", tiny_two_pass_nemo, tiny_corpus, tmp_path / "c", extra=["model.kd.stage=distill"]))
    with pytest.raises(ValueError, match="model.kd.stage=rescorer needs model.kd.init_from"):
        fit_two_pass_kd(_cfg("rescorer", tiny_two_pass_nemo, tiny_corpus, tmp_path / "d"))


def test_shipped_student_config_is_at_most_45_percent_of_the_teacher(tmp_path, monkeypatch):
    """The paper's 55% reduction, for the shipped configs (vocabulary of the CTC demo teacher); no data needed."""
    from nemo_encrl.config import REPO_ROOT, load_config
    from nemo_encrl.models.two_pass import TwoPassModel
    from nemo_encrl.training import copy_tokenizer

    monkeypatch.chdir(tmp_path)  # as on a fresh clone: no data/corpus here
    counts = {}
    for name in ("conformer_rnnt_attention_demo", "kd_rnnt"):
        cfg = load_config("two_pass", name, [f"tokenizer_from={REPO_ROOT / 'models/demo_teacher.nemo'}",
                                             f"model.tokenizer.dir={tmp_path / 'tokenizer'}", "~model.train_ds",
                                             "~model.validation_ds"])  # fmt: skip
        copy_tokenizer(cfg)
        counts[name] = sum(p.numel() for p in TwoPassModel(cfg=cfg.model).parameters())
    assert counts["kd_rnnt"] <= 0.45 * counts["conformer_rnnt_attention_demo"], counts


def test_nbest_store_survives_a_torn_last_line(tmp_path):
    from nemo_encrl.data.nbest_store import NBestStoreError, read_nbest_store

    store = tmp_path / "nbest.jsonl"
    store.write_text('{"id": "a", "nbest": [[1, 2]]}\n{"id": "b", "nb')  # killed in the middle of a write
    assert read_nbest_store(store) == {"a": [[1, 2]]}
    store.write_text('{"id": "a", "nb\n{"id": "b", "nbest": []}\n')
    with pytest.raises(NBestStoreError, match="nbest.jsonl:1: not a JSON line"):
        read_nbest_store(store)
