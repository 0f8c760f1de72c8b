"""The two-pass distillation benchmark end to end on the tiny corpus: costs, equal-compute scratch budget,
every stage and the scratch student trained (two job processes at a time: the stages' chain beside the
scratch student), then scored and reported; a second start reuses everything."""

import json

import pytest
from omegaconf import open_dict


def test_training_table_shows_first_middle_and_last_three_validations(tmp_path):
    from nemo_encrl.two_pass_bench.report import training_lines

    points = [{"step": 250 * i, "wall_seconds": 60.0 * i, "val_wer": 1 - i / 10, "val_loss": 9.0} for i in range(1, 9)]
    points.append({"step": 2100, "end": True, "wall_seconds": 600.0})  # the run's last step, not validated
    (tmp_path / "kd_rnnt" / "runs").mkdir(parents=True)
    (tmp_path / "kd_rnnt" / "runs" / "curve.json").write_text(json.dumps(points))
    rescorer = [{"step": s, "wall_seconds": 30.0, "val_wer": 0.5, "val_attn_loss": a} for s, a in ((250, 40.0), (500, 31.5))]
    (tmp_path / "kd_rescorer" / "runs").mkdir(parents=True)
    (tmp_path / "kd_rescorer" / "runs" / "curve.json").write_text(json.dumps(rescorer))
    rows = [r for r in training_lines(tmp_path) if r.startswith("| student")]
    assert rows == [
        "| student after stage 1 (RNN-T KD) | 8 | 250: 90.00%, 1250: 50.00%, 1500: 40.00%, 1750: 30.00%, 2000: 20.00% | - | 10 min |",
        "| student after stage 2 (rescorer KD) | 2 | 250: 50.00%, 500: 50.00% | 250: 40.0, 500: 31.5 | 0 min |",
    ]  # runs without a curve (stage 3, scratch: not trained yet) have no row


def test_a_truncated_nemo_is_not_a_trained_run(tmp_path):
    import tarfile

    from nemo_encrl.two_pass_bench.run import trained

    assert not trained(tmp_path)
    (tmp_path / "weights.bin").write_bytes(b"w" * 100_000)
    with tarfile.open(tmp_path / "model.nemo", "w:") as archive:  # .nemo files are uncompressed tars
        archive.add(tmp_path / "weights.bin", arcname="model_weights.ckpt")
    assert trained(tmp_path)
    whole = (tmp_path / "model.nemo").read_bytes()
    (tmp_path / "model.nemo").write_bytes(whole[:50_000])  # killed while saving
    assert not trained(tmp_path)


def test_scratch_configs_map_to_run_folders_and_a_bad_one_is_named():
    from omegaconf import OmegaConf

    from nemo_encrl.two_pass_bench.report import row_key, scratch_folders, scratch_overrides

    cfg = OmegaConf.create({"scratch_configs": {"recipe": [], "lr2": ["model.optim.lr=2.0"], "bad": "model.optim.lr=2.0"}})
    assert scratch_folders(cfg) == {"recipe": "scratch", "lr2": "scratch-lr2", "bad": "scratch-bad"}
    assert scratch_folders(OmegaConf.create({})) == {"recipe": "scratch"}  # a profile without a sweep
    assert [row_key(f) for f in ("kd_rnnt", "scratch", "scratch-lr2", "teacher")] == ["rnnt", "scratch", "scratch", "teacher"]
    assert scratch_overrides(cfg, "lr2") == ["model.optim.lr=2.0"] and scratch_overrides(cfg, "recipe") == []
    with pytest.raises(ValueError, match=r"scratch_configs.bad=model.optim.lr=2.0: give a list of Hydra overrides"):
        scratch_overrides(cfg, "bad")


def _result(wer: float, parameters: int, dev: float = 0.5) -> dict:
    scores = {k: {"wer": wer} for k in ("first_pass_greedy", "two_pass", "oracle")}
    return {**scores, "parameters": parameters, "nemo_mb": 1.0, "steps": 10, "rtf_first_pass": 0.01, "rtf_two_pass": 0.02,
            "dev_wer_two_pass": dev}


def test_report_only_shows_unfinished_runs_and_pending_targets(tmp_path, monkeypatch):
    """A bench stopped part way (the teacher and stage 1 scored, stage 2 training): its report says what is
    missing instead of failing, and judges only the targets whose runs are finished."""
    from nemo_encrl.config import load_config
    from nemo_encrl.two_pass_bench.run import cost_inputs, report_two_pass_bench

    monkeypatch.chdir(tmp_path)
    cfg = load_config("two_pass_bench", "quick", [f"out_dir={tmp_path}/bench", f"report={tmp_path}/RESULTS.md"])
    with pytest.raises(FileNotFoundError, match="cost.json"):
        report_two_pass_bench(cfg)
    corpus = tmp_path / "data" / "corpus" / cfg.train_corpus
    corpus.mkdir(parents=True)
    (corpus / "train_manifest.json").write_text(json.dumps({"audio_filepath": "a.wav", "duration": 3600.0, "text": "a"}) + "\n")
    out = tmp_path / "bench"
    out.mkdir()
    ms = {"scratch": 100.0, "rnnt": 200.0, "rescorer": 50.0, "deep": 150.0, "nbest_decode": 10.0}
    (out / "cost.json").write_text(json.dumps({"ms": ms, "audio_seconds_per_batch": 36.0, "machine": "test CPU",
                                               "inputs": cost_inputs(cfg)}))  # fmt: skip
    for name, wer, params in (("teacher", 0.30, 6_000_000), ("kd_rnnt", 0.50, 2_000_000)):
        (out / name).mkdir()
        (out / name / "result.json").write_text(json.dumps(_result(wer, params)))
    text = report_two_pass_bench(cfg).read_text()
    assert "(not finished: partial report)" in text.splitlines()[0]
    assert "| student after stage 1 (RNN-T KD) | 2.00M | 33% | 1.0 MB | 10 | 120 | 50.00% | 50.00% |" in text
    # stage 2: 20 steps at 0.5 of a scratch step + the N-best of 1 h in 100 batches at 0.1 each
    assert "| student after stage 2 (rescorer KD) | - | - | - | 20 | 20 | not finished |" in text
    assert "| same student from scratch, equal compute (best of the configs below) | - | - | - | 170 | 170 | not finished |" in text
    assert ("- Student two-pass WER within +10% relative of the teacher's: **pending** (student after stage 3 "
            "(deep finetuning): not finished).") in text  # fmt: skip
    assert "after stages 1 / 2 / 3): 50.00%; **pending**" in text and "**met**" not in text and "**missed**" not in text
    for name, wer, params in (("kd_rescorer", 0.45, 2_000_000), ("kd_deep", 0.40, 2_000_000)):
        (out / name).mkdir()
        (out / name / "result.json").write_text(json.dumps(_result(wer, params)))
    # the scratch sweep: the recipe as is is better on test but worse on dev; the baseline is chosen on dev,
    # and only once every config is scored
    (out / "scratch").mkdir()
    (out / "scratch" / "result.json").write_text(json.dumps(_result(0.57, 2_000_000, dev=0.55)))
    text = report_two_pass_bench(cfg).read_text()
    assert "better than scratch at equal compute: **pending**" in text
    assert "| reg_after2000 | `regularization_warmup_steps=2000` | scratch-reg_after2000 | not finished | - | - |  |" in text
    (out / "scratch-reg_after2000").mkdir()
    (out / "scratch-reg_after2000" / "result.json").write_text(json.dumps(_result(0.58, 2_000_000, dev=0.50)))
    text = report_two_pass_bench(cfg).read_text()
    assert "partial" not in text and "pending" not in text and "not finished" not in text
    assert "within +10% relative of the teacher's: 40.00% vs 30.00%, **missed**" in text
    assert "better than scratch at equal compute: 40.00% vs 58.00%, **met**" in text
    assert "| same student from scratch, equal compute (`reg_after2000`, chosen on dev) | 2.00M |" in text
    assert "| recipe | none (the recipe as is) | scratch | 55.00% | 57.00% | 57.00% |  |" in text
    assert "| reg_after2000 | `regularization_warmup_steps=2000` | scratch-reg_after2000 | 50.00% | 58.00% | 58.00% | yes |" in text
    assert "the sweep cost 2 x that" in text
    assert "≤ 45% of the teacher's parameters: 33%, **met**" in text


@pytest.mark.slow

def test_tiny_two_pass_bench(tiny_two_pass_nemo, tiny_corpus, tmp_path, monkeypatch, capsys):
    from conftest import TINY_KD_OVERRIDES

    from nemo_encrl.config import load_config
    from nemo_encrl.two_pass_bench import run_two_pass_bench

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "corpus").mkdir(parents=True)
    (tmp_path / "data" / "corpus" / "tiny").symlink_to(tiny_corpus)
    cfg = load_config("two_pass_bench", "quick", [f"teacher={tiny_two_pass_nemo}", "train_corpus=tiny", "eval_corpus=tiny",
                                                  f"out_dir={tmp_path}/bench", f"report={tmp_path}/RESULTS.md",
                                                  "steps.rnnt=3", "steps.rescorer=3", "steps.deep=3", "validate_every=3",
                                                  "cost.steps=2", "cost.warmup=1", "workers=2"])  # fmt: skip
    with open_dict(cfg):
        cfg.student_overrides = [o for o in TINY_KD_OVERRIDES if not o.startswith(("trainer.max_steps", "trainer.val_check"))]
    report = run_two_pass_bench(cfg)
    out = tmp_path / "bench"
    costs = json.loads((out / "cost.json").read_text())["ms"]
    assert set(costs) == {"scratch", "rnnt", "rescorer", "deep", "nbest_decode"} and min(costs.values()) > 0
    scratch = json.loads((out / "scratch" / "result.json").read_text())
    assert json.loads((out / "scratch-reg_after2000" / "result.json").read_text())["steps"] == scratch["steps"]
    stages = 3 * (costs["rnnt"] + costs["rescorer"] + costs["deep"]) / costs["scratch"]
    assert scratch["steps"] >= round(stages)  # plus the N-best decoding of the train split
    for name in ("teacher", "kd_rnnt", "kd_rescorer", "kd_deep", "scratch"):
        result = json.loads((out / name / "result.json").read_text())
        assert {"first_pass_greedy", "two_pass", "oracle"} <= result.keys() and result["parameters"] > 0
        assert 0 < result["rtf_first_pass"] < result["rtf_two_pass"]  # the first pass is part of two-pass decoding
    assert json.loads((out / "kd_deep" / "result.json").read_text())["parameters"] < json.loads(
        (out / "teacher" / "result.json").read_text())["parameters"]
    text = report.read_text()
    printed = capsys.readouterr().out
    assert "[two-pass bench 5/5]" in printed
    for name in ("kd_rnnt", "kd_rescorer", "kd_deep", "scratch", "scratch-reg_after2000"):  # each in its own process
        assert "Trainer.fit" in (out / name / "log.txt").read_text()
    assert "| student after stage 2 (rescorer KD) |" in text and "## Targets" in text and "equal compute" in text
    for label in ("after stage 1 (RNN-T KD)", "after stage 2 (rescorer KD)", "after stage 3 (deep finetuning)",
                  "from scratch, equal compute: `recipe`", "from scratch, equal compute: `reg_after2000`"):  # fmt: skip
        assert text.count(f" {label} | ") == (2 if "stage" in label else 1)  # results and dev-curve tables
    assert "| same student from scratch, equal compute (`" in text and "## Scratch baseline: configs chosen on dev" in text
    capsys.readouterr()
    run_two_pass_bench(cfg)  # the same command again: nothing is trained twice
    assert capsys.readouterr().out.count("done before, skipped") == 6
