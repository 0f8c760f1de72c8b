"""The README's two-pass distillation, followed literally: its settings block set to the tiny corpus, the tiny
two-pass teacher and a tiny student; its three stages, tuning, evaluation and export run as written; the
exported first pass then transcribes in a process where nemo_encrl cannot be imported."""

import json
import re
import subprocess
import sys

import pytest

from nemo_encrl.config import REPO_ROOT

pytestmark = pytest.mark.slow


def two_pass_blocks() -> tuple[str, str]:
    """(settings, commands) code blocks of the README's two-pass distillation section."""
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Two-pass distillation", 1)[1].split("\n## ", 1)[0]
    bash = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert len(bash) == 2, "the README's two-pass section changed shape: update this test with it"
    return bash[0], bash[1]


def test_readme_two_pass_distillation_runs_as_written(tiny_two_pass_nemo, tiny_corpus, tmp_path):
    from conftest import TINY_KD_OVERRIDES, run_readme_settings

    settings, commands = two_pass_blocks()
    student = [o for o in TINY_KD_OVERRIDES if o.startswith("model.encoder.") or "hidden" in o or ".decoder." in o]
    ours = {
        "TEACHER": str(tiny_two_pass_nemo),
        "TRAIN": f"{tiny_corpus}/train_manifest.json",
        "DEV": f"{tiny_corpus}/dev_manifest.json",
        "TEST": f"{tiny_corpus}/test_manifest.json",
        "OUT": f"{tmp_path}/out",
        "TRAINER": " ".join(o for o in TINY_KD_OVERRIDES if o not in student),
        "STUDENT": " ".join(student),
    }
    proc = run_readme_settings(settings, commands, ours, tmp_path)

    out = tmp_path / "out"
    for stage in ("stage1", "stage2", "stage3"):
        assert f"wrote {out / stage}.nemo" in proc.stdout
    assert (out / "nbest_train.jsonl").stat().st_size > 0  # stage 2 decoded the student's N-best first
    report = json.loads((out / "stage3.json").read_text())
    assert {"first_pass_greedy", "two_pass", "oracle"} <= report.keys()
    tuned = json.loads((out / "stage3.rescoring.json").read_text())
    assert "weight" in tuned and "length_bonus" in tuned

    wav = next((tiny_corpus / "wav" / "test").glob("*.wav"))
    code = ("import sys\nsys.modules['nemo_encrl'] = None\n"  # importing the plugin would fail
            "from nemo.collections.asr.models import ASRModel\n"
            f"model = ASRModel.restore_from({str(out / 'student_first_pass.nemo')!r}, map_location='cpu')\n"
            f"print(type(model).__name__, len(model.transcribe([{str(wav)!r}])))\n")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "EncDecRNNTBPEModel 1" in proc.stdout
