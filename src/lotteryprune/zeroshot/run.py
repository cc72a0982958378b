"""Score a dataset with a 0-shot scorer in resumable chunks.

Each finished chunk is written atomically to ``workdir/chunk-00012.parquet``;
``workdir/fingerprint.json`` names the config, model and inputs the chunks were made
from, so stale chunks are deleted instead of reused. A killed job restarts at the first
missing chunk, and the result equals an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..io import write_json, write_parquet
from .config import ZeroShotConfig
from .emotions import Emotions
from .nsp import NSPScorer
from .similarity import SimilarityScorer

log = logging.getLogger(__name__)


def make_scorer(model_dir, emotions: Emotions, cfg: ZeroShotConfig, *, device="cpu", progress=True):
    cls = {"nsp": NSPScorer, "similarity": SimilarityScorer}[cfg.scorer]
    return cls.from_dir(model_dir, emotions, cfg, device=device, progress=progress)


def fingerprint(cfg: ZeroShotConfig, emotions: Emotions, model_dir: str | Path | None, ids: Sequence[str], texts: Sequence[str]) -> str:
    """sha256 of everything a chunk's numbers depend on: config, hypotheses, model, inputs."""
    h = hashlib.sha256()
    h.update(json.dumps({"cfg": asdict(cfg), "labels": emotions.labels, "columns": emotions.columns}, sort_keys=True).encode())
    if model_dir is not None:
        for path in sorted(Path(model_dir).iterdir()):
            if path.is_file() and not path.name.startswith("."):
                st = path.stat()
                h.update(f"{path.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    for i, t in zip(ids, texts):
        h.update(str(i).encode())
        h.update(b"\x00")
        h.update(str(t).encode())
        h.update(b"\x01")
    return h.hexdigest()


def _prepare_workdir(workdir: Path, fp: str) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    stamp = workdir / "fingerprint.json"
    old = json.loads(stamp.read_text()).get("fingerprint") if stamp.is_file() else None
    if old != fp:
        stale = sorted(workdir.glob("chunk-*.parquet"))
        if stale:
            log.info("%s: %d chunks from another config/input, deleted", workdir, len(stale))
        for p in stale:
            p.unlink()
        write_json(stamp, {"fingerprint": fp})


def clear_workdir(workdir: str | Path) -> None:
    """Delete the chunks and fingerprint once the final parquet is written."""
    workdir = Path(workdir)
    for p in list(workdir.glob("chunk-*.parquet")) + [workdir / "fingerprint.json"]:
        p.unlink(missing_ok=True)
    try:
        workdir.rmdir()
    except OSError:
        pass


def score_dataset(
    scorer,
    ids: Sequence[str],
    texts: Sequence[str],
    *,
    chunk_size: int,
    workdir: str | Path,
    fp: str,
    progress: bool = True,
    after_chunk: Callable[[int], None] | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Score every text in resumable chunks; return the frame (``id`` + one column per label).

    ``after_chunk(k)`` is called after chunk ``k`` is saved (tests raise there to simulate a kill).
    """
    ids, texts = [str(i) for i in ids], list(texts)
    workdir = Path(workdir)
    _prepare_workdir(workdir, fp)
    n = len(texts)
    starts = list(range(0, n, chunk_size))
    raw_parts, reused, t0, scored = [], 0, time.perf_counter(), 0
    for k, start in enumerate(tqdm(starts, desc="chunks", disable=not progress or len(starts) < 2)):
        path = workdir / f"chunk-{k:05d}.parquet"
        chunk_ids = ids[start : start + chunk_size]
        if path.is_file():
            part = pd.read_parquet(path)
            if part["id"].tolist() == chunk_ids and list(part.columns[1:]) == list(scorer.columns):
                raw_parts.append(part[scorer.columns].to_numpy(np.float32))
                reused += 1
                continue
            log.warning("%s does not match this run's ids/columns; rescoring it", path)
        raw = scorer.score_raw(texts[start : start + chunk_size])
        frame = pd.DataFrame(raw, columns=scorer.columns)
        frame.insert(0, "id", chunk_ids)
        write_parquet(path, frame)
        raw_parts.append(raw)
        scored += len(chunk_ids)
        if after_chunk is not None:
            after_chunk(k)
    elapsed = time.perf_counter() - t0
    raw_all = np.concatenate(raw_parts) if raw_parts else np.zeros((0, len(scorer.columns)), np.float32)
    scores, calib = scorer.finalise(raw_all)
    out = pd.DataFrame(scores, columns=scorer.columns)
    out.insert(0, "id", ids)
    info = {
        "texts": n,
        "hypotheses": len(scorer.columns),
        "chunks": len(starts),
        "chunks_reused": reused,
        "texts_scored_now": scored,
        "seconds": elapsed,
        "pairs_per_second": scored * len(scorer.columns) / elapsed if scored and elapsed > 0 else None,
        **calib,
    }
    return out, info


def read_texts(path: str | Path) -> tuple[list[str], list[str]]:
    """ids and texts of a data-stage parquet; errors name the file and the row."""
    frame = pd.read_parquet(path, columns=["id", "text"])
    bad = frame["text"].isna() | ~frame["text"].map(lambda t: isinstance(t, str))
    if bad.any():
        raise ValueError(f"{path}: row {int(np.flatnonzero(bad.to_numpy())[0])} has no text")
    dup = frame["id"].astype(str).duplicated()
    if dup.any():
        raise ValueError(f"{path}: duplicate id {frame['id'].astype(str)[dup].iloc[0]!r}")
    return frame["id"].astype(str).tolist(), frame["text"].tolist()
