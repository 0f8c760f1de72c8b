"""scripts/setup.sh (behind the README's two commands) refuses an unsupported interpreter before touching .venv."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_setup_refuses_unsupported_python(tmp_path):
    fake = tmp_path / "python3.9"
    fake.write_text("#!/bin/sh\n# stands in for an interpreter outside 3.10-3.12\nexit 1\n")
    fake.chmod(0o755)
    run = subprocess.run(["bash", str(ROOT / "scripts" / "setup.sh")], env={"PATH": "/usr/bin:/bin", "PYTHON": str(fake)},
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 1
    assert f"PYTHON={fake} is not Python 3.10-3.12" in run.stderr

