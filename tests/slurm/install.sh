#!/usr/bin/env bash
# Install a single-node Slurm (Debian's slurm-wlm) and munge for tests/test_slurm.py.
# Idempotent: does nothing if slurmctld is already on PATH. Needs root (CI runs as root).
set -euo pipefail

if command -v slurmctld >/dev/null 2>&1 && command -v munged >/dev/null 2>&1; then
    echo "slurm already installed: $(slurmctld -V)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
# slurm-wlm pulls slurmctld, slurmd and the client tools (sbatch, squeue, sinfo, sacct).
$SUDO apt-get install -y --no-install-recommends slurm-wlm munge
slurmctld -V
