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
    assert "[two-pass bench 4/4]" in printed
    for name in ("kd_rnnt", "kd_rescorer", "kd_deep", "scratch"):  # each trained in its own process
        assert "Trainer.fit" in (out / name / "log.txt").read_text()
    assert "| student after stage 2 (rescorer KD) |" in text and "## Targets" in text and "equal compute" in text
    for label in ("after stage 1 (RNN-T KD)", "after stage 2 (rescorer KD)", "after stage 3 (deep finetuning)",
                  "from scratch, equal compute"):  # fmt: skip
        assert text.count(f" {label} | ") == 2  # the results table and the training table (its dev curve)
    capsys.readouterr()
    run_two_pass_bench(cfg)  # the same command again: nothing is trained twice
    assert capsys.readouterr().out.count("done before, skipped") == 5
