"""Quiet jobs: everything a job prints (NeMo, Lightning, lhotse, warnings) goes to its log file, and the
terminal keeps one line per job and its step progress bar. Redirected at the file-descriptor level, so
output from C extensions and worker processes lands in the log too.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import IO

_terminal: IO[str] | None = None


def terminal() -> IO[str] | None:
    """The terminal while a quiet job runs (for its progress bar), else None."""
    return _terminal


@contextlib.contextmanager
def job_log(path: str | Path | None):
    """Within the block, stdout and stderr append to `path` (None: left alone)."""
    global _terminal
    if path is None or _terminal is not None:  # not asked, or already inside a quiet job
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    _terminal = os.fdopen(os.dup(saved[1]), "w", buffering=1)
    try:
        with open(path, "a") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
        _terminal.close()
        _terminal = None


PROGRESS_ENV = "NEMO_ENCRL_PROGRESS_FILE"


def read_progress(path: Path) -> tuple[int, int] | None:
    """(step, total) from a job's progress file; None before its first step (or mid-write)."""
    try:
        step, total = (int(x) for x in path.read_text().split())
    except (OSError, ValueError):
        return None
    return step, total


def say(text: str) -> None:
    """A line for the person at the terminal, inside a quiet job or not."""
    print(text, file=terminal() or sys.stdout, flush=True)
