import json
import subprocess
import sys
from pathlib import Path

import pytest

from nemo_encrl.cli import build_parser, main
from nemo_encrl.joblog import read_progress

SUBCOMMANDS = ["corpus", "prepare-librispeech", "prepare-tedlium", "teacher", "cache-teacher", "distill", "finetune",
               "export", "bench", "evaluate", "demo", "average"]


@pytest.mark.parametrize("sub", [None] + SUBCOMMANDS)
def test_help(sub, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(([sub] if sub else []) + ["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "usage: nemo-encrl" in out
    if sub is None:
        assert all(s in out for s in SUBCOMMANDS)


def test_console_script_installed():
    exe = Path(sys.executable).parent / "nemo-encrl"
    out = subprocess.run([str(exe), "corpus", "--help"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "--profile" in out.stdout


def test_corpus_command(tmp_path, capsys):
    assert main(["corpus", "--profile", "tiny", "--out", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "train     40 utterances" in out and (tmp_path / "c" / "test_cuts.jsonl.gz").exists()


def test_bad_inputs_get_one_clear_line(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nope.nemo"), str(tmp_path / "m.json")]) == 2
    assert f"model file {tmp_path / 'nope.nemo'} does not exist" in capsys.readouterr().err
    assert main(["corpus", "--profile", "huge"]) == 2
    assert "corpus profile 'huge' not found" in capsys.readouterr().err
    assert main(["teacher", "model.optim.lrr=1"]) == 2
    assert "model.optim.lrr" in capsys.readouterr().err


def test_evaluate_command_writes_json(tiny_ctc_nemo, tiny_corpus, tmp_path, capsys):
    report = tmp_path / "r.json"
    assert main(["evaluate", str(tiny_ctc_nemo), str(tiny_corpus / "dev_manifest.json"), "--json", str(report),
                 "--train-manifest", str(tiny_corpus / "train_manifest.json")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "WER" in out and "unseen in training:" in out
    data = json.loads(report.read_text())
    assert data["utterances"] == 12 and {"wer", "cer", "rtf", "parameters"} <= data.keys()
    seen = data["seen_words"]  # dev sentences are disjoint from train ones, so some words are unseen
    assert seen["seen_words"] + seen["unseen_words"] == data["reference_words"] and seen["unseen_words"] > 0


def _tiny_demo_argv(teacher) -> list[str]:
    from conftest import TINY_TRAINING

    training = [o for o in TINY_TRAINING if not o.startswith("trainer.max_steps")] + ["model.encoder.conv_kernel_size=7"]
    return ["demo", f"teacher={teacher}", "data.small.corpus=tiny", "eval_corpus=tiny", "out_dir=out",
            "report=out/bench_report.md", "depths=[2,1]", "steps=8", "stage1_steps=3", "validate_every=4",
            "cost.pinned={ctc: {2: 1.0, 1: 0.6}, stage1_online: 1.8, stage1_cached: 1.2, teacher_per_audio_hour: 100.0, "
            "unit_ms: 500.0, stage2_kl_cached: {2: 1.1, 1: 0.7}}", "speed.utterances=2", "speed.repeats=1",
            "student={d_model: 16, n_layers: 2, n_heads: 2}", f"overrides=[{','.join(training)}]"]  # fmt: skip


@pytest.mark.slow
def test_demo_in_steps_end_to_end_and_resumable(tiny_ctc_nemo, tmp_path, monkeypatch, capsys):
    """teacher scored -> cache -> one stage 1 -> students at two depths -> scratch partners on the same
    compute -> the table with steps and wall-clock, a verdict and the plot; the same command reuses it all."""
    monkeypatch.chdir(tmp_path)
    argv = _tiny_demo_argv(tiny_ctc_nemo)
    assert main(argv) == 0
    printed = capsys.readouterr().out
    table = (tmp_path / "out" / "results.md").read_text()
    for name in ("teacher", "mse_small_L2_s1", "scratch-noreg_small_L2_s1", "mse_small_L1_s1", "scratch-noreg_small_L1_s1"):
        assert f"| {name} |" in table and f"| {name} |" in printed
    rows = {r["name"]: r for r in json.loads((tmp_path / "out" / "results.json").read_text())}
    assert rows["teacher"]["utterances"] == 12
    for depth in (2, 1):  # budgets in steps: scratch gets `steps`, EncRL gives up its share of stage 1
        scratch, encrl = rows[f"scratch-noreg_small_L{depth}_s1"], rows[f"mse_small_L{depth}_s1"]
        assert scratch["steps"] == 8 and 1 <= encrl["steps"] < 8
        assert f"| 3 (stage 1, shared) + {encrl['steps']} |" in table
        assert scratch["parameters"] == encrl["parameters"]
        assert f"- {depth} layers: EncRL " in table
    assert rows["scratch-noreg_small_L1_s1"]["parameters"] < rows["scratch-noreg_small_L2_s1"]["parameters"]
    assert json.loads((tmp_path / "out" / "teacher_cache_small" / "cache.json").read_text())["complete"]
    assert (tmp_path / "out" / "plots" / "demo_dev_wer_vs_compute.png").stat().st_size > 1000
    assert "Command: `nemo-encrl demo teacher=" in (tmp_path / "out" / "bench_report.md").read_text()
    # the profile's two workers: each job in its own process (its log in its folder, its steps reported to the
    # status lines), then every speed timed again with nothing else running
    assert "[bench 5/5]" in printed  # one wave: no sweep to wait for (one scratch config)
    for name in rows:
        if name != "teacher":
            assert "Trainer.fit" in (tmp_path / "out" / name / "log.txt").read_text()
            assert read_progress(tmp_path / "out" / name / "progress.txt") == (rows[name]["steps"],) * 2
        assert "speed_settings" in json.loads((tmp_path / "out" / name / "result.json").read_text())
    # the same command again: every run is reused (settings match), the same table comes out
    assert main(argv) == 0
    again = capsys.readouterr().out
    assert again.count("done before, skipped") == 5 and (tmp_path / "out" / "results.md").read_text() == table
    # other settings never silently reuse a finished run
    assert main([*argv, "stage1_steps=4"]) == 2
    assert "was made with other settings" in capsys.readouterr().err


def test_training_command_exits_when_it_stops_mid_epoch(tiny_corpus, tmp_path):
    """A train split larger than lhotse's bucket buffer, stopped by max_steps: the process must end.

    With lhotse's concurrent bucketing its filler thread outlives training and the command hangs
    after saving the .nemo (seen on the 30000-utterance teacher corpus).
    """
    from conftest import tiny_ctc_overrides

    overrides = [o for o in tiny_ctc_overrides(tiny_corpus, tmp_path) if not o.startswith("trainer.max_steps")]
    exe = Path(sys.executable).parent / "nemo-encrl"
    cmd = [str(exe), "teacher", *overrides, "trainer.max_steps=1",
           "model.train_ds.bucket_buffer_size=4", "model.train_ds.shuffle_buffer_size=4"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "tiny_ctc.nemo").exists()


@pytest.mark.parametrize("group,name", [("teacher", "conformer_ctc_bpe_demo"), ("encrl", "encrl_clip_mse"),
                                        ("finetune", "ctc_finetune")])  # fmt: skip
def test_every_training_config_buckets_without_a_background_thread(group, name):
    from nemo_encrl.config import load_config

    assert load_config(group, name, []).model.train_ds.concurrent_bucketing is False


def test_stage1_takes_a_pretrained_name_alone(tiny_corpus, tmp_path, capsys):
    """`model.teacher.pretrained_name=...` alone reaches NeMo's pretrained loader (no `path=null` needed);
    with neither, one line names both keys."""
    from nemo_encrl.cli import main

    data = [f"model.train_ds.manifest_filepath={tiny_corpus}/train_manifest.json",
            f"model.validation_ds.manifest_filepath={tiny_corpus}/dev_manifest.json", f"output_nemo={tmp_path}/s1.nemo",
            f"exp_manager.exp_dir={tmp_path}/runs", f"model.tokenizer_dir={tmp_path}/tok"]  # fmt: skip
    assert main(["distill", "model.teacher.pretrained_name=stt_en_no_such_model", *data]) == 2
    assert "could not load pretrained teacher 'stt_en_no_such_model'" in capsys.readouterr().err
    assert main(["distill", *data]) == 2
    assert "give exactly one of teacher.path (a .nemo file) or teacher.pretrained_name" in capsys.readouterr().err
