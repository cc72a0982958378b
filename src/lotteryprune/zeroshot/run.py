"""Score a dataset with a 0-shot scorer in resumable chunks (the raw scorer output).

Each finished chunk is written atomically to ``<workdir>/<key>/chunk-00012.parquet``,
where the key (:func:`fingerprint`) covers the config, the model's files and the inputs
the chunks were made from (:class:`lotteryprune.resume.WorkDir`), so stale chunks are
never reused. A killed job restarts at the first
missing chunk, and the result equals an uninterrupted run. The raw output depends on
nothing outside the fingerprint: the calibration to [0,1] is a later step
(:mod:`.calibrate`), fitted once over the labelled train split.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..io import write_parquet
from ..resume import KEY_LENGTH, WorkDir, content_hash
from .config import ZeroShotConfig
from .emotions import Emotions
from .nsp import NSPScorer
from .similarity import SimilarityScorer

log = logging.getLogger(__name__)


def make_scorer(model_dir, emotions: Emotions, cfg: ZeroShotConfig, *, device="cpu", progress=True):
    cls = {"nsp": NSPScorer, "similarity": SimilarityScorer}[cfg.scorer]
    return cls.from_dir(model_dir, emotions, cfg, device=device, progress=progress)


def fingerprint(
    cfg: ZeroShotConfig, emotions: Emotions, model_dir: str | Path | None, ids: Sequence[str], texts: Sequence[str]
) -> str:
    """The key of a scoring job's chunks: everything their numbers depend on (the resolved
    config, the hypotheses, the model files' contents, the ids and texts)."""
    h = hashlib.sha256()
    h.update(
        json.dumps(
            {"cfg": asdict(cfg), "labels": emotions.labels, "columns": emotions.columns}, sort_keys=True
        ).encode()
    )
    if model_dir is not None:
        h.update(content_hash(model_dir).encode())
    for i, t in zip(ids, texts):
        h.update(str(i).encode())
        h.update(b"\x00")
        h.update(str(t).encode())
        h.update(b"\x01")
    return h.hexdigest()[:KEY_LENGTH]


def score_dataset(
    scorer,
    ids: Sequence[str],
    texts: Sequence[str],
    *,
    chunk_size: int,
    workdir: WorkDir,
    progress: bool = True,
    after_chunk: Callable[[int], None] | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Score every text in resumable chunks; return the raw frame (``id`` + one column per
    label: P(is next) for nsp, cosines for similarity) and a record of the run.

    ``after_chunk(k)`` is called after chunk ``k`` is saved (tests raise there to simulate a kill).
    """
    ids, texts = [str(i) for i in ids], list(texts)
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
    out = pd.DataFrame(raw_all, columns=scorer.columns)
    out.insert(0, "id", ids)
    info = {
        "texts": n,
        "hypotheses": len(scorer.columns),
        "chunks": len(starts),
        "chunks_reused": reused,
        "texts_scored_now": scored,
        "seconds": elapsed,
        "pairs_per_second": scored * len(scorer.columns) / elapsed if scored and elapsed > 0 else None,
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
