import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from nemo_encrl.cli import build_parser, main

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


@pytest.mark.slow
def test_demo_pipeline_end_to_end_and_resumable(tiny_ctc_nemo, tmp_path, monkeypatch, capsys, caplog):
    """corpus -> teacher -> stage 1 -> stage 2 at two depths -> scratch on the same budget -> table."""
    from conftest import TINY_STUDENT_OVERRIDES

    monkeypatch.chdir(tmp_path)
    argv = ["demo", "profile=tiny", f"teacher={tiny_ctc_nemo}", "out=out", "depths=[2,1]",
            "stage1_minutes=0.2", "stage2_minutes=0.2", f"overrides=[{','.join(TINY_STUDENT_OVERRIDES)}]"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    table = (tmp_path / "out" / "results.md").read_text()
    for name in ("teacher", "encrl_L2", "scratch_L2", "encrl_L1", "scratch_L1"):
        assert f"| {name} |" in table and f"| {name} |" in out
    rows = {r["name"]: r for r in json.loads((tmp_path / "out" / "results.json").read_text())}
    assert rows["teacher"]["utterances"] == 12
    # scratch got EncRL's total wall-clock (stage 1 + its stage 2) as its budget, and no more than that
    assert rows["scratch_L2"]["parameters"] == rows["encrl_L2"]["parameters"]
    assert rows["scratch_L1"]["parameters"] < rows["scratch_L2"]["parameters"]
    assert rows["scratch_L2"]["train_seconds"] <= rows["encrl_L2"]["train_seconds"] + 60
    # stage 1 read the teacher cache, whose build time is part of EncRL's wall-clock
    cache = json.loads((tmp_path / "out" / "teacher_cache" / "cache.json").read_text())
    assert cache["complete"] and cache["summary"]["utterances"] == 40
    assert rows["encrl_L2"]["train_seconds"] >= cache["summary"]["build_seconds"]
    # a second run reuses every finished step
    caplog.clear()
    caplog.set_level(logging.INFO, logger="nemo_encrl")
    assert main(argv) == 0
    assert caplog.text.count("reusing") >= 5
    assert "is complete (40 utterances); nothing to do" in caplog.text


@pytest.mark.slow
def test_demo_retrains_teacher_on_request(tmp_path, monkeypatch, capsys):
    from conftest import TINY_MODEL_OVERRIDES

    monkeypatch.chdir(tmp_path)
    argv = ["demo", "profile=tiny", "retrain_teacher=true", "teacher_only=true", "out=out",
            f"teacher_overrides=[{','.join(TINY_MODEL_OVERRIDES)}]"]  # fmt: skip
    assert main(argv) == 0
    assert (tmp_path / "out" / "teacher.nemo").exists()
    assert "| teacher |" in capsys.readouterr().out


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
