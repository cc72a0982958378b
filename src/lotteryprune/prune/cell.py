"""One pruning cell: a method at one prune rate on one lottery sample, searched once per
seed. Each seed's mask is scored by the shared protocol (:func:`score_mask`), so every
method's masks compare on the same validation subset of that seed."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..resume import WorkDir, job_key
from . import run_method
from .score import score_mask
from .task import build_task

log = logging.getLogger(__name__)


def prune_cell(
    method: str,
    *,
    split: pd.DataFrame,
    sample_ids: Sequence[str],
    model_dir: str,
    rate: float,
    seeds: Sequence[int],
    params: dict,
    train: dict,
    valid_size: int | None,
    metric: str,
    max_length: int,
    dtype: str,
    device: str = "cpu",
    threads: int = 1,
    workdir: str | Path | None = None,
    inputs: Mapping[str, str] | None = None,
    progress: bool = True,
) -> tuple[dict[int, tuple[np.ndarray, dict | None, np.ndarray | None]], dict]:
    """Masks (search seed -> (head keep-mask, weight masks, neuron keep-mask or None)) and
    the cell's summary.

    ``workdir`` keeps resumable search state (the GA's per-generation checkpoints) in a
    directory keyed by the contents of ``inputs`` (the files the search reads) and every
    parameter, so a changed split, lottery sample or model never resumes a stale search.
    """
    work = None
    if workdir is not None:
        key = job_key(
            inputs or {},
            {
                "method": method,
                "rate": rate,
                "params": params,
                "train": train,
                "valid_size": valid_size,
                "metric": metric,
                "max_length": max_length,
                "dtype": dtype,
            },
        )
        work = WorkDir(workdir, key)
    masks, runs, valid_n = {}, [], 0
    unit = "heads"
    for seed in seeds:
        task = build_task(
            split,
            sample_ids,
            model_dir=model_dir,
            rate=rate,
            seed=seed,
            params=params,
            train=train,
            valid_size=valid_size,
            metric=metric,
            max_length=max_length,
            dtype=dtype,
            workdir=(work / f"seed{seed}") if work is not None else None,
            device=device,
            threads=threads,
            progress=progress,
        )
        start = time.perf_counter()
        result = run_method(method, task)
        search_seconds = time.perf_counter() - start
        scored = score_mask(task, result.head_keep, result.weight_masks, neuron_keep=result.neuron_keep)
        log.info(
            "%s at %s%%, seed %d: achieved rate %.2f%%, valid %s %.4f (search %.1f s)",
            method,
            rate,
            seed,
            result.achieved_rate(),
            metric,
            scored[metric],
            search_seconds,
        )
        masks[seed] = (result.head_keep, result.weight_masks, result.neuron_keep)
        valid_n = len(task.valid_texts)
        unit = result.unit
        runs.append(
            {
                "seed": seed,
                "achieved_rate": result.achieved_rate(),
                "head_keep": result.head_keep.astype(int).tolist(),
                **(
                    {}
                    if result.neuron_keep is None
                    else {"neurons_per_layer": result.neuron_keep.sum(1).astype(int).tolist()}
                ),
                "search_seconds": search_seconds,
                "valid": scored,
                "history": result.history,
                "extras": result.extras,
            }
        )
    if work is not None:
        work.clear()  # the masks file is the result now
    summary = {
        "method": method,
        "rate": rate,
        "unit": unit,
        "metric": metric,
        "lottery_size": len(sample_ids),
        "valid_size": valid_n,
        "valid_mean": float(np.mean([r["valid"][metric] for r in runs])),
        "runs": runs,
        "config": {
            "params": params,
            "train": train,
            "valid_size": valid_size,
            "max_length": max_length,
            "dtype": dtype,
        },
    }
    return masks, summary
