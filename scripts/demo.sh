#!/usr/bin/env bash
# The README's main command: the whole job on the built-in offline default. Extra arguments go to
# `nemo-encrl demo` as overrides of conf/demo/demo.yaml, e.g. `bash scripts/demo.sh steps=1000`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
exec nemo-encrl demo "$@"
