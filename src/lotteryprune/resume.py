"""Resumable work, one way for every stage: a work directory keyed by everything its
results depend on, holding atomically written pieces and append-only journals.

A long job (0-shot scoring in chunks, a genetic search checkpointed per generation) keeps
its partial results in ``<base>/<key>``, where ``key`` is a hash of the *contents* of every
input file it reads (the split, the lottery sample, the model's files...) and of its
parameters. A rerun with the same inputs finds the same directory and resumes; change any
input or parameter and the key changes, so a stale partial result is never reused (and
the old directory is deleted, so it cannot pile up).

Pieces are written atomically (:mod:`lotteryprune.io`). A :class:`Journal` is a JSON-lines
file appended one record at a time; a record torn by a kill (the last line) is ignored on
reading, so a kill costs at most the record being written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .io import _default

log = logging.getLogger(__name__)

KEY_LENGTH = 16


def content_hash(path: str | os.PathLike, *, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes, or of a directory's files (names and bytes, sorted)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            digest.update(str(f.relative_to(path)).encode() + b"\0")
        with open(f, "rb") as fh:
            while block := fh.read(chunk):
                digest.update(block)
        if path.is_dir():
            digest.update(b"\1")
    return digest.hexdigest()


def job_key(inputs: Mapping[str, str | os.PathLike], params: Any) -> str:
    """A short key of the job: the content hash of each named input and the params (JSON)."""
    record = {
        "inputs": {name: content_hash(path) for name, path in sorted(inputs.items())},
        "params": params,
    }
    blob = json.dumps(record, sort_keys=True, default=_default).encode()
    return hashlib.sha256(blob).hexdigest()[:KEY_LENGTH]


class WorkDir:
    """``<base>/<key>``: the partial results of one job with one set of inputs and params.

    Opening it deletes sibling directories of ``base`` made for other keys (stale work of
    an earlier config or input) when ``prune_stale`` is set.
    """

    def __init__(self, base: str | os.PathLike, key: str, *, prune_stale: bool = True):
        self.base = Path(base)
        self.key = key
        self.path = self.base / key
        if prune_stale and self.base.is_dir():
            for other in self.base.iterdir():
                if other.is_dir() and other.name != key and len(other.name) == KEY_LENGTH:
                    log.info("%s: partial results for other inputs or params, deleted", other)
                    shutil.rmtree(other, ignore_errors=True)
        self.path.mkdir(parents=True, exist_ok=True)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def journal(self, name: str) -> Journal:
        return Journal(self.path / name)

    def clear(self) -> None:
        """Delete the partial results (once the job's final outputs are written)."""
        shutil.rmtree(self.path, ignore_errors=True)
        try:
            self.base.rmdir()
        except OSError:
            pass


class Journal:
    """Append-only JSON lines; a torn last line (a kill mid-write) is skipped on reading."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def append(self, record: dict) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record, default=_default) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def __iter__(self) -> Iterator[dict]:
        if not self.path.exists():
            return
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn record: the job was killed while writing it
            if isinstance(record, dict):
                yield record

    def reset(self) -> None:
        self.path.unlink(missing_ok=True)
