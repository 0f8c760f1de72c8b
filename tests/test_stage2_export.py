"""Stage 2: plain NeMo CTC students cut from a stage-1 run, finetuned; scratch baseline; ONNX export;
and the proof that stock NeMo uses them without nemo_encrl."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nemo_encrl.student import StudentError, load_stage1, student_from_stage1

pytestmark = pytest.mark.slow


def test_students_of_each_depth(tiny_students, tiny_encrl_nemo):
    from nemo.collections.asr.models import ASRModel, EncDecCTCModelBPE

    assert sorted(tiny_students) == [1, 2]
    stage1 = load_stage1(tiny_encrl_nemo)
    for depth, result in tiny_students.items():
        model = ASRModel.restore_from(result["nemo"], map_location="cpu")
        assert type(model) is EncDecCTCModelBPE
        assert len(model.encoder.layers) == depth
        assert model.tokenizer.vocab_size == stage1.tokenizer.vocab_size
        assert model.cfg.preprocessor == stage1.cfg.preprocessor
        assert "teacher" not in model.cfg and "nemo_encrl" not in str(model.cfg)
    summary = json.loads((Path(tiny_students[2]["nemo"]).parent / "summary_stage1.json").read_text())
    assert set(summary) == {"1", "2"} and summary["2"]["train_seconds"] > 0


def test_cut_keeps_stage1_weights(tiny_encrl_nemo):
    stage1 = load_stage1(tiny_encrl_nemo)
    student = student_from_stage1(stage1, n_layers=1)
    for key, value in student.encoder.state_dict().items():
        assert torch.equal(value, stage1.encoder.state_dict()[key]), key
    assert torch.equal(student.decoder.decoder_layers[0].weight, stage1.decoder.decoder_layers[0].weight)
    fresh = student_from_stage1(stage1, n_layers=2, decoder_init="fresh")
    assert not torch.equal(fresh.decoder.decoder_layers[0].weight, stage1.decoder.decoder_layers[0].weight)
    # the full-depth student computes exactly what the stage-1 student computed
    full = student_from_stage1(stage1).eval()
    stage1.eval()
    signal = torch.randn(1, 16000)
    with torch.no_grad():
        a = full(input_signal=signal, input_signal_length=torch.tensor([16000]))[0]
        b = stage1(input_signal=signal, input_signal_length=torch.tensor([16000]))[0]
    assert torch.allclose(a, b, atol=1e-5)


def test_scratch_baseline_same_code_path(tiny_ctc_nemo, tiny_corpus, tmp_path):
    from conftest import tiny_finetune_overrides
    from nemo.collections.asr.models import ASRModel

    from nemo_encrl.config import load_config
    from nemo_encrl.finetune import finetune_students

    cfg = load_config("finetune", "ctc_finetune", tiny_finetune_overrides(tiny_corpus, tmp_path, "scratch", None, tiny_ctc_nemo)
                      + ["init.depths=[2]"])  # fmt: skip
    result = finetune_students(cfg)
    model = ASRModel.restore_from(result[2]["nemo"], map_location="cpu")
    assert len(model.encoder.layers) == 2 and model.cfg.encoder.d_model == 24
    assert Path(result[2]["nemo"]).name == "student_scratch_L2.nemo"


STOCK = """
import sys
from nemo.collections.asr.models import ASRModel
model = ASRModel.restore_from(sys.argv[1], map_location="cpu")
hyp = model.transcribe([sys.argv[2]], verbose=False)[0]
model.export(sys.argv[3])
assert not any(name.startswith("nemo_encrl") for name in sys.modules), "nemo_encrl was imported"
print("OK", type(model).__name__, repr(hyp.text))
"""


def test_stock_nemo_restores_transcribes_exports_without_plugin(tiny_students, tiny_corpus, tmp_path):
    wav = json.loads((tiny_corpus / "test_manifest.json").read_text().splitlines()[0])["audio_filepath"]
    onnx = tmp_path / "student.onnx"
    proc = subprocess.run([sys.executable, "-c", STOCK, tiny_students[2]["nemo"], wav, str(onnx)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "OK EncDecCTCModelBPE" in proc.stdout
    assert onnx.stat().st_size > 10_000


def test_onnx_matches_pytorch(tiny_students, tiny_corpus, tmp_path, capsys):
    from nemo_encrl.cli import main

    wav = json.loads((tiny_corpus / "test_manifest.json").read_text().splitlines()[0])["audio_filepath"]
    assert main(["export", tiny_students[2]["nemo"], str(tmp_path / "s.onnx"), "--check", wav]) == 0
    out = capsys.readouterr().out
    diff = float(out.split("max |diff| ")[1].split()[0])
    assert diff < 1e-3, out  # onnxruntime vs PyTorch log-probs, fp32 on CPU
    assert "same greedy tokens: True" in out


def test_bad_stage2_inputs(tiny_ctc_nemo, tiny_encrl_nemo, tmp_path):
    with pytest.raises(StudentError, match="is not an EncRL stage-1 model: it holds a .*EncDecCTCModelBPE"):
        load_stage1(tiny_ctc_nemo)
    with pytest.raises(StudentError, match="does not exist"):
        load_stage1(tmp_path / "none.nemo")
    with pytest.raises(StudentError, match="depth 5 is not possible: the stage-1 student has 2 layers"):
        student_from_stage1(tiny_encrl_nemo, n_layers=5)
    with pytest.raises(StudentError, match="decoder_init='random'"):
        student_from_stage1(tiny_encrl_nemo, n_layers=1, decoder_init="random")
    for keep in (0.5, 0.97):  # a copy cut short (a full disk, a killed upload): one line naming the file
        cut = tmp_path / f"truncated_{keep}.nemo"
        data = tiny_encrl_nemo.read_bytes()
        cut.write_bytes(data[: int(len(data) * keep)])
        with pytest.raises(StudentError, match=rf"stage-1 file .*truncated_{keep}.nemo|{cut.name} .*truncated"):
            load_stage1(cut)


def test_missing_tokenizer_is_named(tiny_encrl_nemo, monkeypatch):
    import nemo_encrl.student as student_mod

    stage1 = load_stage1(tiny_encrl_nemo)
    monkeypatch.setattr(type(stage1), "_extract_tokenizer_from_config", lambda self, cfg, d: None)
    with pytest.raises(StudentError, match="no tokenizer.model could be extracted"):
        student_mod.student_from_stage1(stage1, n_layers=1)


def test_finetune_depth_too_large_fails_before_training(tiny_encrl_nemo, tiny_corpus, tmp_path):
    from conftest import tiny_finetune_overrides

    from nemo_encrl.config import load_config
    from nemo_encrl.finetune import finetune_students

    cfg = load_config("finetune", "ctc_finetune", tiny_finetune_overrides(tiny_corpus, tmp_path, "stage1", tiny_encrl_nemo, None)
                      + ["init.depths=[2,7]"])  # fmt: skip
    with pytest.raises(StudentError, match=r"init.depths \[7\] not possible: the stage-1 student has 2 layers"):
        finetune_students(cfg)
    assert not (tmp_path / "students").exists()


def test_stage2_schedule_reads_the_stage1_students_width(tiny_encrl_nemo, tiny_corpus, tmp_path, monkeypatch):
    """NeMo's Noam peak depends on model.encoder.d_model: a student cut from stage 1 uses its real width,
    not whatever the finetuning config's model.encoder says (the quick start never sets it)."""
    from conftest import tiny_finetune_overrides

    import nemo_encrl.finetune as finetune
    from nemo_encrl.config import load_config

    seen = {}
    monkeypatch.setattr(finetune, "run_training", lambda run, build: seen.setdefault("d", run.model.optim.sched.d_model))
    cfg = load_config("finetune", "ctc_finetune", tiny_finetune_overrides(tiny_corpus, tmp_path, "stage1", tiny_encrl_nemo, None)
                      + ["init.depths=[1]", "model.encoder.d_model=96"])  # fmt: skip
    finetune.finetune_students(cfg)
    assert seen["d"] == 24  # the tiny stage-1 student's d_model


def test_l1_prune_to_size_leaves_the_asked_number_of_parameters(tiny_ctc_nemo):
    from nemo_encrl.pruning import l1_prune_to_size, make_pruning_permanent, nonzero_parameters
    from nemo_encrl.teacher import load_ctc_model

    model = load_ctc_model(path=tiny_ctc_nemo)
    total = nonzero_parameters(model)
    sparsity = l1_prune_to_size(model, total // 4)
    assert abs(nonzero_parameters(model) - total // 4) <= 0.001 * total and 0.7 < sparsity < 0.8
    assert make_pruning_permanent(model) > 0 and abs(nonzero_parameters(model) - total // 4) <= 0.001 * total
    with pytest.raises(ValueError, match="cannot prune .* to 5 nonzero parameters"):
        l1_prune_to_size(load_ctc_model(path=tiny_ctc_nemo), 5)  # more than the weights' share of the model


def test_pruning_baselines_same_code_path(tiny_ctc_nemo, tiny_corpus, tmp_path):
    """init.from=teacher keeps the teacher's first layers; prune_l1 zeroes ~that fraction of attention/FF
    weights during finetuning and saves plain (mask-free) weights."""
    from conftest import tiny_finetune_overrides
    from nemo.collections.asr.models import ASRModel

    from nemo_encrl.config import load_config
    from nemo_encrl.finetune import finetune_students

    base = tiny_finetune_overrides(tiny_corpus, tmp_path, "teacher", None, tiny_ctc_nemo)
    layers = finetune_students(load_config("finetune", "ctc_finetune", base + ["init.depths=[1]"]))
    cut = ASRModel.restore_from(layers[1]["nemo"], map_location="cpu")
    assert len(cut.encoder.layers) == 1 and cut.cfg.encoder.d_model == 32  # the teacher's width

    l1 = finetune_students(load_config("finetune", "ctc_finetune", base + ["init.depths=[2]", "init.prune_l1=0.5",
                                                                        f"output_dir={tmp_path}/l1"]))  # fmt: skip
    pruned = ASRModel.restore_from(l1[2]["nemo"], map_location="cpu")
    w = pruned.encoder.layers[0].feed_forward1.linear1.weight
    assert 0.45 < float((w == 0).float().mean()) < 0.55
    assert not any("weight_orig" in k for k in pruned.state_dict())
    with pytest.raises(StudentError, match="choose one pruning"):
        finetune_students(load_config("finetune", "ctc_finetune", base + ["init.depths=[2]", "init.prune_l1=0.5",
                                                                          "init.prune_to_parameters=1000"]))  # fmt: skip
    with pytest.raises(StudentError, match=r"init.depths \[9\] not possible: the teacher has 2 layers"):
        finetune_students(load_config("finetune", "ctc_finetune", base + ["init.depths=[9]"]))


def test_summary_keeps_depths_of_earlier_calls(tmp_path, monkeypatch):
    """One call per depth into the same output_dir (as the demo does) lists every depth."""
    from nemo_encrl import finetune
    from nemo_encrl.config import load_config

    monkeypatch.setattr(finetune, "check_data", lambda cfg: None)
    monkeypatch.setattr(finetune, "run_training", lambda run, build: run.output_nemo)
    for depth in (6, 3):
        finetune.finetune_students(load_config("finetune", "ctc_finetune", [
            "init.from=scratch", "init.teacher=unused.nemo", f"init.depths=[{depth}]", f"output_dir={tmp_path}"]))  # fmt: skip
    summary = json.loads((tmp_path / "summary_scratch.json").read_text())
    assert list(summary) == ["3", "6"] and summary["6"]["nemo"].endswith("student_scratch_L6.nemo")


@pytest.mark.parametrize("source", ["stage1", "scratch"])
def test_regularization_section_switches_on_specaugment_and_dropout(tiny_ctc_nemo, tiny_encrl_nemo, tiny_corpus, tmp_path,
                                                                    source):  # fmt: skip
    """regularization.after_steps: SpecAugment and encoder dropout in the student, off until that step."""
    from conftest import tiny_finetune_overrides
    from omegaconf import OmegaConf

    from nemo_encrl.callbacks import RegularizationWarmup
    from nemo_encrl.config import load_config
    from nemo_encrl.finetune import regularization
    from nemo_encrl.student import student_from_scratch, student_from_stage1

    cfg = load_config("finetune", "ctc_finetune", [
        *tiny_finetune_overrides(tiny_corpus, tmp_path, source, tiny_encrl_nemo, tiny_ctc_nemo),
        "regularization.after_steps=5", "regularization.dropout=0.2"])  # fmt: skip
    dropout = regularization(cfg)
    OmegaConf.resolve(cfg)
    assert cfg.regularization_warmup_steps == 5 and cfg.model.spec_augment.time_masks == 10
    if source == "stage1":
        model = student_from_stage1(tiny_encrl_nemo, 2, "stage1", cfg.model, encoder_updates=dropout)
    else:
        model = student_from_scratch(tiny_ctc_nemo, OmegaConf.merge(cfg.model.encoder, dropout), cfg.model)
    assert model.spec_augmentation is not None and model.cfg.encoder.dropout == 0.2
    probs = {m.p for m in model.encoder.modules() if isinstance(m, torch.nn.Dropout)}
    assert 0.2 in probs
    warmup = RegularizationWarmup(cfg.regularization_warmup_steps)
    warmup._set(model, False)
    assert model.spec_augmentation is None and {m.p for m in model.encoder.modules() if isinstance(m, torch.nn.Dropout)} == {0.0}
    warmup._set(model, True)
    assert model.spec_augmentation is not None and 0.2 in {m.p for m in model.encoder.modules() if isinstance(m, torch.nn.Dropout)}
    off = load_config("finetune", "ctc_finetune", tiny_finetune_overrides(tiny_corpus, tmp_path, source, tiny_encrl_nemo, tiny_ctc_nemo))
    assert regularization(off) == {} and off.model.spec_augment is None  # the default: no regularisation
