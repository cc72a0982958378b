"""The habits a contributor expects hold: ruff (lint and format, configured in pyproject.toml)
and snakefmt are clean, and every workflow script says in one docstring what it does."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PYTHON_TREES = ["src", "tests", "workflow", "benchmarks"]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff_is_clean(command):
    ruff = BIN / "ruff"
    if not ruff.exists():
        pytest.skip("ruff is in requirements-dev.txt (setup.sh --tests installs it)")
    proc = _run(str(ruff), *command, *PYTHON_TREES)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_snakefmt_is_clean():
    snakefmt = BIN / "snakefmt"
    if not snakefmt.exists():
        pytest.skip("snakefmt is in requirements-dev.txt (setup.sh --tests installs it)")
    proc = _run(str(snakefmt), "--check", "Snakefile", "rules")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_every_script_has_a_docstring():
    missing = [
        p.name
        for p in sorted((ROOT / "workflow" / "scripts").glob("*.py"))
        if not ast.get_docstring(ast.parse(p.read_text()))
    ]
    assert not missing, f"workflow scripts without a docstring: {missing}"
