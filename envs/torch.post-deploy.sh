#!/usr/bin/env bash
# Snakemake runs this inside the new conda env (from the directory it was started in, the
# workflow root): install this repository's library, so `script:` jobs import lotteryprune
# from the env. Editable, so edits to src/ reach the env without recreating it.
set -euo pipefail
python -m pip install --no-deps --no-build-isolation -e .
