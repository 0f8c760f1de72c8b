"""The README's quick start, followed literally: its settings block set to the tiny corpus, a local .nemo
standing in for the pretrained name and two DDP processes on the CPU; its commands run as written."""

import re
import subprocess
import sys

import pytest

from nemo_encrl.config import REPO_ROOT

pytestmark = pytest.mark.slow


def quickstart_blocks() -> tuple[str, str, str]:
    """(settings, commands, python) code blocks of the README's quick-start section."""
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    bash = re.findall(r"```bash\n(.*?)```", section, re.S)
    python = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(bash) == 2 and len(python) == 1, "the quick start changed shape: update this test with it"
    return bash[0], bash[1], python[0]


def test_quickstart_runs_as_written(tiny_ctc_nemo, tiny_corpus, tmp_path):
    from conftest import TINY_TRAINING, run_readme_settings

    settings, commands, snippet = quickstart_blocks()
    tiny_training = [o for o in TINY_TRAINING if not o.startswith("trainer.max_steps")]
    ours = {
        "TEACHER": f"model.teacher.path={tiny_ctc_nemo}",
        "TRAIN": f"{tiny_corpus}/train_manifest.json",
        "DEV": f"{tiny_corpus}/dev_manifest.json",
        "TEST": f"{tiny_corpus}/test_manifest.json",
        "OUT": f"{tmp_path}/out",
        "TRAINER": " ".join(["trainer.accelerator=cpu", "trainer.devices=2", "trainer.sync_batchnorm=false", *tiny_training]),
        "STUDENT": "model.encoder.d_model=24 model.encoder.n_heads=2 model.encoder.n_layers=2 model.encoder.conv_kernel_size=7",
        "DEPTHS": "[2,1]",
        "STAGE1_STEPS": "4",
        "STAGE2_STEPS": "3",
    }
    proc = run_readme_settings(settings, commands, ours, tmp_path)

    out = tmp_path / "out"
    assert (out / "teacher_cache" / "cache.json").exists()
    assert "100%" in proc.stderr and "40/40" in proc.stderr  # the cache build's progress bar, with its total
    # NeMo's output is in each run's log.txt; the terminal keeps the bars and the results
    logs = {stage: (out / stage / "log.txt").read_text() for stage in ("stage1", "stage2")}
    assert "reads the teacher's outputs from" in logs["stage1"]  # stage 1 used the cache
    assert "reads the teacher's outputs from" not in proc.stdout + proc.stderr
    assert (out / "teacher_cache_log.txt").exists()
    assert (out / "stage1" / "encrl_stage1.nemo").exists()
    for depth in (2, 1):
        student = out / "stage2" / f"student_stage1_L{depth}.nemo"
        assert student.exists() and (out / "stage2" / f"student_stage1_L{depth}.json").exists()
        assert f"student_stage1_L{depth}.nemo: WER" in proc.stdout
    # both ranks trained (DDP), not one process with two devices ignored
    for log in logs.values():
        assert "distributed_backend=gloo" in log and "MEMBER: 2/2" in log

    # the stock-NeMo snippet, with the student and a wav of the test split, in a process without nemo_encrl
    wav = next((tiny_corpus / "wav" / "test").glob("*.wav"))
    code = snippet.replace("runs/my_students/stage2/student_stage1_L8.nemo", str(out / "stage2" / "student_stage1_L1.nemo"))
    code = code.replace('"some.wav"', repr(str(wav))).replace('"student.onnx"', repr(str(tmp_path / "student.onnx")))
    guard = "import sys\nsys.modules['nemo_encrl'] = None\n"  # importing the plugin would fail
    proc = subprocess.run([sys.executable, "-c", guard + code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "student.onnx").stat().st_size > 10_000
