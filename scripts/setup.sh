#!/usr/bin/env bash
# Shared setup of the README's two commands (sourced by scripts/demo.sh and scripts/test.sh).
# Idempotent and quick on a second run: installs only what is missing.
#  - Debian packages for the offline corpus: espeak-ng, flite, fortunes (apt-get, as root or via sudo)
#  - a virtualenv at .venv with torch (CPU wheel torch==2.13.0 unless TORCH_SPEC says otherwise, or
#    whatever torch is already there), then this package with its test extras.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

missing=()
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
command -v flite >/dev/null 2>&1 || missing+=(flite)
[ -f /usr/share/games/fortunes/fortunes ] || missing+=(fortunes)
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# a supported interpreter (NeMo 3.0: Python 3.10-3.12), newest first; PYTHON=/path/to/python overrides
supported='import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 12))'
PY="${PYTHON:-}"
if [ -n "$PY" ]; then
  "$PY" -c "$supported" || { echo "[setup] error: PYTHON=$PY is not Python 3.10-3.12" >&2; exit 1; }
else
  for cand in python3.12 python3.11 python3.10 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c "$supported" 2>/dev/null; then  # a pyenv shim may exist without its version
      PY="$cand"; break
    fi
  done
fi
[ -n "$PY" ] || { echo "[setup] error: Python 3.10-3.12 is required (set PYTHON=/path/to/python3.x)" >&2; exit 1; }
[ -x .venv/bin/python ] || { echo "[setup] creating .venv with $PY"; "$PY" -m venv .venv; }

stamp=.venv/.nemo_encrl-installed
want="$(cat pyproject.toml | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  if ! .venv/bin/python -c 'import torch' >/dev/null 2>&1; then
    # torch first and pinned: an unpinned torch would pull several GB of CUDA wheels here.
    # GPU users: TORCH_SPEC='torch==2.x' with your CUDA index, or install torch into .venv beforehand.
    echo "[setup] installing ${TORCH_SPEC:-torch==2.13.0}"
    .venv/bin/pip install -q "${TORCH_SPEC:-torch==2.13.0}"
  fi
  echo "[setup] installing nemo_encrl and its dependencies (NeMo ASR; a few minutes the first time)"
  .venv/bin/pip install -q -e ".[test]"
  echo "$want" > "$stamp"
fi
export PATH="$ROOT/.venv/bin:$PATH"
export PYTHONUNBUFFERED=1
