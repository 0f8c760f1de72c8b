import json
import subprocess
import sys
from pathlib import Path

import pytest

from nemo_encrl.cli import build_parser, main

SUBCOMMANDS = ["corpus", "prepare-librispeech", "prepare-tedlium", "teacher", "distill", "finetune", "export", "evaluate", "demo"]


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
    assert f"teacher file {tmp_path / 'nope.nemo'} does not exist" in capsys.readouterr().err
    assert main(["corpus", "--profile", "huge"]) == 2
    assert "corpus profile 'huge' not found" in capsys.readouterr().err
    assert main(["teacher", "model.optim.lrr=1"]) == 2
    assert "model.optim.lrr" in capsys.readouterr().err


def test_evaluate_command_writes_json(tiny_ctc_nemo, tiny_corpus, tmp_path, capsys):
    report = tmp_path / "r.json"
    assert main(["evaluate", str(tiny_ctc_nemo), str(tiny_corpus / "dev_manifest.json"), "--json", str(report)]) == 0
    assert "WER" in capsys.readouterr().out
    data = json.loads(report.read_text())
    assert data["utterances"] == 12 and {"wer", "cer", "rtf", "parameters"} <= data.keys()


@pytest.mark.slow
def test_demo_reuses_given_teacher(tiny_ctc_nemo, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--profile", "tiny", "--teacher", str(tiny_ctc_nemo), "--out", "out"]) == 0
    out = capsys.readouterr().out
    assert "teacher tiny_ctc.nemo on tiny/test: WER" in out
    assert json.loads((tmp_path / "out" / "teacher_test.json").read_text())["utterances"] == 12


@pytest.mark.slow
def test_demo_retrains_teacher_on_request(tmp_path, monkeypatch, capsys):
    from conftest import TINY_MODEL_OVERRIDES

    monkeypatch.chdir(tmp_path)
    argv = ["demo", "--profile", "tiny", "--retrain-teacher", "--out", "out", "--teacher-overrides", *TINY_MODEL_OVERRIDES]
    assert main(argv) == 0
    assert (tmp_path / "out" / "teacher.nemo").exists()
    assert "teacher teacher.nemo on tiny/test: WER" in capsys.readouterr().out
