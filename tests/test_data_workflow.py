"""The data rules under Snakemake: a local source is an input (editing it reruns the
download and what depends on it), an unverified source is logged and recorded as such,
and config errors the schema cannot see stop the DAG with the key's name.

Runs only the download and normalise rules (no model, no torch) in a temporary copy of
the workflow, with a hand-made VADER tweets file as the local source."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
COPY = ["Snakefile", "rules", "workflow", "config", "envs", "profiles"]

pytestmark = pytest.mark.workflow


@pytest.fixture
def workdir(tmp_path):
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, tmp_path / name)
    return tmp_path


def _snakemake(workdir: Path, *args: str, overlay: dict | None = None) -> subprocess.CompletedProcess:
    config = ["--configfile", "config/config.yaml"]
    if overlay is not None:
        (workdir / "config" / "mine.yaml").write_text(yaml.safe_dump(overlay))
        config.append("config/mine.yaml")
    cmd = [SNAKEMAKE, "--cores", "1", *args, *config]  # --configfile last: it takes several files
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=300)


def _ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _planned(workdir: Path, target: str, overlay: dict) -> set[str]:
    out = _ok(_snakemake(workdir, "-n", target, "--quiet", "rules", overlay=overlay))
    known = {"download", "normalise", "split"}
    return {line.split()[0] for line in out.splitlines() if line.split() and line.split()[0] in known}


def test_editing_a_local_source_reruns_what_depends_on_it(workdir, tmp_path):
    source = tmp_path / "mine" / "tweets_GroundTruth.txt"
    source.parent.mkdir()
    source.write_bytes(b"1\t2.5\tI love this\r\n2\t-1.2\tI hate this\r\n")
    overlay = {"data": {"labelled": {"format": "vader_tweets", "source": str(source), "sha256": None, "size": None}}}
    target = "results/data/labelled.parquet"
    _ok(_snakemake(workdir, target, overlay=overlay))
    provenance = json.loads((workdir / "results/data/raw/labelled.provenance.json").read_text())
    assert provenance["verified"] is False and provenance["source"] == str(source)
    assert provenance["warning"].startswith(f"{source}: not verified")
    assert "not verified" in (workdir / "results/data/raw/labelled.download.log").read_text()
    assert pd.read_parquet(workdir / target)["id"].tolist() == ["vader-tweets-1", "vader-tweets-2"]
    assert _planned(workdir, target, overlay) == set()  # nothing changed, nothing to do

    time.sleep(1.1)  # a newer mtime than the outputs, on any file system
    source.write_bytes(source.read_bytes() + b"3\t0.4\tyay\r\n")
    assert _planned(workdir, target, overlay) == {"download", "normalise"}
    _ok(_snakemake(workdir, target, overlay=overlay))
    assert pd.read_parquet(workdir / target)["id"].tolist() == ["vader-tweets-1", "vader-tweets-2", "vader-tweets-3"]


def test_source_overridden_without_its_checksum_stops_with_the_key(workdir):
    proc = _snakemake(
        workdir, "-n", "results/data/raw/labelled.download", overlay={"data": {"labelled": {"source": "/data/my.csv"}}}
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert (
        "config data.labelled.sha256: config/mine.yaml sets data.labelled.source: /data/my.csv without its own sha256"
        in out
    )
    assert "`sha256: null`" in out and "size mismatch" not in out


def test_split_fractions_not_summing_to_one_stop_the_dag(workdir):
    proc = _snakemake(workdir, "-n", overlay={"data": {"split": {"train": 0.7, "valid": 0.2, "test": 0.15}}})
    assert proc.returncode != 0 and "config data.split: fractions sum to 1.05, not 1" in proc.stdout + proc.stderr


def test_missing_local_source_is_named_before_anything_runs(workdir):
    overlay = {"data": {"labelled": {"source": "/no/such/tweets.txt", "sha256": None, "size": None}}}
    proc = _snakemake(workdir, "-n", "results/data/labelled.parquet", overlay=overlay)
    assert proc.returncode != 0 and "/no/such/tweets.txt" in proc.stdout + proc.stderr
    assert not os.path.exists(workdir / "results")
