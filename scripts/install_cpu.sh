#!/usr/bin/env bash
# Create .venv (if absent) and install connectomics with the CPU build of PyTorch.
# A machine with an NVIDIA GPU and CUDA PyTorch already installed can skip this and run
# `pip install -e ".[test]"`: setup.py asks for torch as a range, so it keeps that build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
if ! python -c "import torch" 2>/dev/null; then
  # the CPU wheel (about 200 MB) instead of the multi-GB CUDA build plain `pip install torch` pulls;
  # --retries 0 keeps a machine without access to download.pytorch.org from waiting on it.
  pip install --retries 0 --timeout 20 --extra-index-url https://download.pytorch.org/whl/cpu "torch==2.13.0+cpu" \
    || pip install "torch==2.13.0"
fi
pip install -e ".[test]"
