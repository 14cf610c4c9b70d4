#!/usr/bin/env bash
# Score every checkpoint in a range: inference + post-processing + AP-75, one CSV row each,
# plus a PNG of AP-75 / AP-50 over the training iteration. No hard-coded paths; no cd.
#   bash eval_iter.sh --config-file X.yaml --checkpoints DIR --gt GT.h5 [--from N --to M] [--opts K V ...]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# the interpreter: $PYTHON, else the .venv that scripts/install_cpu.sh makes, else python on PATH
if [[ -z "${PYTHON:-}" && -x "$HERE/.venv/bin/python" ]]; then PYTHON="$HERE/.venv/bin/python"; fi
PYTHON="${PYTHON:-$(command -v python || command -v python3)}"
exec "$PYTHON" "$HERE/scripts/eval_iter.py" "$@"
