"""Quiet jobs: what a job prints (Python, C extensions, child processes) lands in its log file; the
terminal keeps the lines said to it and the progress bar."""

import subprocess
import sys

SCRIPT = """
import os, sys
from nemo_encrl.joblog import job_log, say, terminal
print("before")
with job_log(sys.argv[1]):
    print("from python")
    print("to stderr", file=sys.stderr)
    os.system("echo from a child process")
    say("for the terminal")
    assert terminal() is not None
assert terminal() is None
print("after")
"""


def test_job_output_goes_to_its_log_and_the_terminal_keeps_its_lines(tmp_path):
    log = tmp_path / "job" / "log.txt"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(log)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["before", "after"]
    assert proc.stderr.strip() == "for the terminal"
    text = log.read_text()
    for line in ("from python", "to stderr", "from a child process"):
        assert line in text
    assert "for the terminal" not in text and "before" not in text
