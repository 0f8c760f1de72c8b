"""The two-pass distillation benchmark end to end on the tiny corpus: costs, equal-compute scratch budget,
every stage and the scratch student trained (two job processes at a time: the stages' chain beside the
scratch student), then scored and reported; a second start reuses everything."""

import json

import pytest
from omegaconf import open_dict

pytestmark = pytest.mark.slow


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
    capsys.readouterr()
    run_two_pass_bench(cfg)  # the same command again: nothing is trained twice
    assert capsys.readouterr().out.count("done before, skipped") == 5
