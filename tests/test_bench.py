"""The benchmark on the tiny corpus with a tiny teacher: every method runs through the real code paths,
the report and plots are written from the run folders, and a re-run skips finished runs."""

import json

import pytest
from omegaconf import OmegaConf, open_dict

from nemo_encrl.bench import (Run, StaleRunError, _against_scratch, _epoch_for_epoch, _epochs, _layers_for_size, _to_target,
                               _versus_paper, plan_runs, retime_runs, run_bench)
from nemo_encrl.config import load_config

pytestmark = pytest.mark.slow


def test_plan_sizes_seeds_and_extras():
    cfg = load_config("bench", "quick")
    runs = plan_runs(cfg)
    assert Run("encrl", "small", 2) in runs and Run("scratch", "small", 2) in runs
    assert Run("encrl", "medium", 2) not in runs and Run("encrl", "medium", 1) in runs
    assert {r.method for r in runs if r.size == "small"} == {"scratch", "encrl", "clip_only", "mse_only", "kd",
                                                             "prune_layers", "prune_l1", "prune_l1_size"}
    assert len(runs) == len(set(runs)) == 12
    with pytest.raises(ValueError, match=r"unknown bench methods \['distil'\]"):
        plan_runs(load_config("bench", "quick", ["methods.extra=[distil]"]))


def test_to_target_counts_epochs_and_wall_clock():
    curve = [{"epoch": 0, "wall_seconds": 10, "val_wer": 0.9}, {"epoch": 1, "wall_seconds": 20, "val_wer": 0.5}]
    assert _to_target(curve, 0.6) == (2, 20)
    assert _to_target(curve, 0.4) == (None, None)


def test_epochs_count_a_cut_last_epoch_as_a_fraction():
    curve = [{"epoch": 0, "step": 100, "val_wer": 0.9, "wall_seconds": 1}, {"epoch": 1, "step": 200, "val_wer": 0.7, "wall_seconds": 2},
             {"epoch": 2, "step": 250, "val_wer": 0.6, "wall_seconds": 3}]  # fmt: skip
    assert _epochs(curve) == [1.0, 2.0, 2.5]
    assert _to_target(curve, 0.65) == (2.5, 3)
    scratch = [{**p, "val_wer": w} for p, w in zip(curve, [0.95, 0.8, 0.75])]
    results = {"scratch_small_s1": {"method": "scratch", "size": "small", "seed": 1, "curve": scratch},
               "encrl_small_s1": {"method": "encrl", "size": "small", "seed": 1, "curve": curve[:2]}}  # fmt: skip
    # EncRL's 0.9 after 1 epoch took scratch 2 epochs (0.8); its 0.7 after 2 epochs scratch never reached
    assert _epoch_for_epoch(results["encrl_small_s1"], results) == [(1.0, 0.9, 2.0), (2.0, 0.7, None)]
    assert _epoch_for_epoch(results["scratch_small_s1"], results) is None


def test_no_target_when_scratch_learned_nothing():
    curve = [{"epoch": 0, "wall_seconds": 60, "val_wer": 1.0}]
    results = {"scratch_small_s1": {"method": "scratch", "size": "small", "seed": 1, "curve": curve},
               "encrl_small_s1": {"method": "encrl", "size": "small", "seed": 1, "curve": curve}}  # fmt: skip
    assert _against_scratch(results["encrl_small_s1"], results) is None
    results["scratch_small_s1"]["curve"] = [{"epoch": 0, "wall_seconds": 60, "val_wer": 0.99}]
    assert _against_scratch(results["encrl_small_s1"], results)["epochs"] is None  # a real target, not reached


def test_versus_paper_states_each_claim_from_the_numbers():
    cfg = load_config("bench", "quick")
    curve = lambda wers: [{"epoch": i, "wall_seconds": 60 * (i + 1), "val_wer": w} for i, w in enumerate(wers)]  # noqa: E731
    results = {
        "scratch_small_s1": {"method": "scratch", "size": "small", "seed": 1, "curve": curve([0.9, 0.7, 0.6, 0.5, 0.45, 0.4])},
        "encrl_small_s1": {"method": "encrl", "size": "small", "seed": 1, "stage1_seconds": 300,
                           "curve": curve([0.5, 0.4, 0.3])},
        "scratch_medium_s1": {"method": "scratch", "size": "medium", "seed": 1, "curve": curve([0.8, 0.5])},
        "encrl_medium_s1": {"method": "encrl", "size": "medium", "seed": 1, "stage1_seconds": 300,
                            "curve": curve([0.9, 0.6])},
    }  # fmt: skip
    summary = {("small", "scratch"): {"wer": 0.5, "params": 5e5}, ("small", "encrl"): {"wer": 0.4, "params": 5e5},
               ("medium", "scratch"): {"wer": 0.4, "params": 1e6}, ("medium", "encrl"): {"wer": 0.38, "params": 1e6},
               ("small", "kd"): {"wer": 0.35, "params": 5e5}}  # fmt: skip
    text = "\n".join(_versus_paper(cfg, results, summary))
    assert "EncRL 40.0% vs scratch 50.0%" in text and "+20.0% relative (paper: up to 12.54% lower): holds." in text
    assert "+5.0% relative (paper: up to 12.54% lower): EncRL is better, by less than the paper's." in text
    assert "after 2.0 of scratch's 6.0 epochs (3.0x fewer; paper: ~3x)" in text
    assert ("Epoch for epoch (encrl_small_s1): after 1.0 stage-2 epochs its dev WER was 50.0%, scratch needed 4.0 (4.0x); "
            "after 3.0 it was 30.0%, scratch never got there.") in text and "7.0 min against scratch's 6.0 min" in text
    assert "encrl_medium_s1): stage 2 never reached scratch's final dev WER (50.0%)" in text
    assert "logit KD (KL) (0.50M nonzero parameters): 35.0% vs EncRL 40.0% (0.50M) at small: EncRL not better." in text


def test_tiny_bench_end_to_end_and_resume(tiny_ctc_nemo, tmp_path, monkeypatch, capsys):
    from conftest import TINY_TRAINING

    from nemo.collections.asr.models import ASRModel

    monkeypatch.chdir(tmp_path)
    cfg = load_config("bench", "quick", [f"teacher={tiny_ctc_nemo}", "corpus=tiny", f"out_dir={tmp_path}/bench",
                                         f"report={tmp_path}/docs/RESULTS.md", "~sizes.medium",
                                         "~budget_minutes.medium", "budget_minutes.small=0.2", "speed.utterances=3",
                                         "methods.extra=[kd,prune_layers,prune_l1,prune_l1_size]", "command=test",
                                         f"notes={tmp_path}/notes.md"])  # fmt: skip
    (tmp_path / "notes.md").write_text("Read after the run.")
    with open_dict(cfg):
        cfg.sizes.small = OmegaConf.create({"d_model": 16, "n_layers": 2, "n_heads": 2})
        cfg.overrides = [*TINY_TRAINING, "trainer.val_check_interval=3", "model.encoder.conv_kernel_size=7"]
    report = run_bench(cfg)
    text = report.read_text()
    for name in ("encrl_small_s1", "encrl_small_s2", "scratch_small_s2", "kd_small_s1", "prune_l1_small_s1"):
        result = json.loads((tmp_path / "bench" / name / "result.json").read_text())
        assert result["rtf_onnx"] > 0 and result["rtf_pytorch"] > 0 and 0 <= result["wer"]
        assert result["rtf_onnx_teacher"] > 0 and result["rtf_pytorch_teacher"] > 0  # timed beside the run's model
        assert not list((tmp_path / "bench" / name).glob("*.onnx"))  # the number is kept, not the file
        assert result["stage2_seconds"] > 0 and f"| {name} |" in text
    encrl = json.loads((tmp_path / "bench" / "encrl_small_s1" / "result.json").read_text())
    assert 0 < encrl["stage1_seconds"] < encrl["budget_seconds"] + 60
    # one teacher cache served every stage-1 run (encrl x2, kd); each was charged a third of its build
    cache = json.loads((tmp_path / "bench" / "teacher_cache" / "cache.json").read_text())
    assert cache["complete"] and len(cache["layout"]["hidden_layers"]) == 2  # all of the tiny teacher's layers
    assert encrl["cache_seconds_charged"] == pytest.approx(cache["summary"]["build_seconds"] / 3, abs=0.1)
    assert "reads the teacher's outputs from one teacher cache" in text
    pruned = json.loads((tmp_path / "bench" / "prune_l1_small_s1" / "result.json").read_text())
    assert pruned["nonzero_parameters"] < pruned["parameters"]
    sized = json.loads((tmp_path / "bench" / "prune_l1_size_small_s1" / "result.json").read_text())
    scratch = json.loads((tmp_path / "bench" / "scratch_small_s1" / "result.json").read_text())
    assert sized["parameters"] == pruned["parameters"]  # the teacher's architecture ...
    assert abs(sized["nonzero_parameters"] - scratch["parameters"]) < 0.01 * scratch["parameters"]  # ... at the student's size
    layers = ASRModel.restore_from(json.loads((tmp_path / "bench" / "prune_layers_small_s1" / "result.json")
                                              .read_text())["nemo"], map_location="cpu")  # fmt: skip
    assert layers.cfg.encoder.d_model == 32  # the teacher's width, fewer layers
    assert "## Targets" in text and "Test WER per voice group" in text and "## Versus the paper's claims" in text
    assert "## Epoch for epoch (paper's accounting)" in text and "| encrl_small_s2 | " in text.split("## Epoch for epoch")[1].split("\n## ")[0]
    assert "Read after the run." in text  # the hand-written notes file is appended
    assert (tmp_path / "docs" / "plots" / "quick_dev_wer.png").stat().st_size > 1000
    capsys.readouterr()
    # resumable: finished runs are skipped, a run without its result (killed mid-run) starts over
    (tmp_path / "bench" / "kd_small_s1" / "result.json").unlink()
    (tmp_path / "bench" / "kd_small_s1" / "stale").write_text("left by the killed run")
    run_bench(cfg)
    out = capsys.readouterr().out
    assert out.count("done before, skipped") == 7 and "kd_small_s1: unfinished, starting it over" in out
    assert "kd_small_s1: logit KD" in out and not (tmp_path / "bench" / "kd_small_s1" / "stale").exists()
    assert (tmp_path / "bench" / "kd_small_s1" / "result.json").exists()
    # --retime: speeds measured again, WERs kept, the report says when
    before = json.loads((tmp_path / "bench" / "encrl_small_s1" / "result.json").read_text())
    assert retime_runs(cfg, [Run("encrl", "small", 1), Run("encrl", "medium", 1)]) == ["teacher", "encrl_small_s1"]
    after = json.loads((tmp_path / "bench" / "encrl_small_s1" / "result.json").read_text())
    assert after["wer"] == before["wer"] and after["speed_timed"] and after["rtf_onnx"] > 0
    assert after["rtf_onnx"] != before["rtf_onnx"] or after["rtf_pytorch"] != before["rtf_pytorch"]
    # a finished run made under other settings is never reused nor overwritten: the bench stops first
    before = (tmp_path / "bench" / "encrl_small_s1" / "result.json").read_text()
    with open_dict(cfg):
        cfg.stage1_overrides = ["model.optim.sched.warmup_steps=99"]
    with pytest.raises(StaleRunError, match=r"bench/encrl_small_s1 was made with other settings \(stage1_overrides"):
        run_bench(cfg)
    assert (tmp_path / "bench" / "encrl_small_s1" / "result.json").read_text() == before


def test_layers_for_size_matches_parameter_count(tiny_ctc_nemo):
    from nemo_encrl.teacher import load_ctc_model

    teacher = load_ctc_model(path=tiny_ctc_nemo)
    total = sum(p.numel() for p in teacher.parameters())
    assert _layers_for_size(teacher, total) == len(teacher.encoder.layers)
    assert _layers_for_size(teacher, 1) == 1


def test_missing_teacher_is_named(tmp_path):
    cfg = load_config("bench", "quick", [f"teacher={tmp_path}/gone.nemo", f"out_dir={tmp_path}/bench"])
    with pytest.raises(FileNotFoundError, match=r"bench teacher=.*gone.nemo: no such .nemo file"):
        run_bench(cfg)
    assert not (tmp_path / "bench").exists()
