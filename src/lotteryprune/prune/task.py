"""The task a pruning method is given and the result it returns, and how one job's task is
built from the split, the lottery sample and the config (the prune rule and
benchmarks/speed.py build it the same way).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..model.training import TrainConfig, train


@dataclass
class PruneTask:
    """Everything a method may use. ``rate`` is the percent of heads (or weights) removed,
    as in ``prune.rates``; ``seed`` is this search's seed (``prune.seeds``)."""

    model_dir: str
    train_texts: Sequence[str]  # the lottery sample
    train_labels: Sequence[int]
    valid_texts: Sequence[str]  # the validation subset masks are scored on
    valid_labels: Sequence[int]
    rate: float
    train_cfg: TrainConfig  # the short training every mask is scored with (prune.train)
    params: dict  # the method's own config section (prune.<method>)
    seed: int
    metric: str  # the validation metric a search maximises (config `metric`)
    workdir: Path | None = None  # for checkpoints (resume after a kill)
    device: str = "cpu"
    threads: int = 1
    progress: bool = True

    def train_on_sample(self, model, tokenizer, cfg, **kwargs) -> dict:
        """Train ``model`` on the lottery sample (the task's train texts and labels) with
        ``cfg``: the one training every method's search and the shared scoring run."""
        return train(model, tokenizer, self.train_texts, self.train_labels, cfg, **kwargs)


@dataclass
class PruneResult:
    head_keep: np.ndarray  # [layers, heads] bool; all True for weight-level methods
    unit: str = "heads"  # what the rate counts: "heads", "weights" or "flops" (FLOP-budgeted methods)
    weight_masks: dict[str, torch.Tensor] | None = None  # weight-level methods: name -> bool mask
    history: list[dict] = field(default_factory=list)  # per generation / step, method-defined
    extras: dict = field(default_factory=dict)  # anything else worth recording (scores, ...)
    # [layers, intermediate] bool: feed-forward neurons kept (None: the method prunes no
    # neuron, and a layer with no head goes, feed-forward included)
    neuron_keep: np.ndarray | None = None
    # unit "flops": (encoder FLOPs the masks leave, the unpruned encoder's), at the
    # budget's sequence length (lotteryprune.model.cost.UnitCosts)
    flops: tuple[float, float] | None = None

    def achieved_rate(self) -> float:
        """Percent of heads, weights or encoder FLOPs removed (as ``unit`` says)."""
        if self.unit == "weights":
            total = sum(m.numel() for m in self.weight_masks.values())
            return 100.0 * (1.0 - sum(int(m.sum()) for m in self.weight_masks.values()) / total)
        if self.unit == "flops":
            if self.flops is None:
                raise ValueError("a result in unit 'flops' needs its flops (kept, full)")
            kept, full = self.flops
            return 100.0 * (1.0 - kept / full)
        return 100.0 * (1.0 - float(self.head_keep.mean()))


def lottery_rows(split_df: pd.DataFrame, sample_ids: Sequence[str]) -> pd.DataFrame:
    """The train rows of ``sample_ids``, in that order; an id not in the train split is named."""
    train = split_df[split_df["split"] == "train"]
    train = train.set_index(train["id"].astype(str).rename(None))
    ids = [str(i) for i in sample_ids]
    missing = [i for i in ids if i not in train.index]
    if missing:
        raise KeyError(f"lottery sample ids not in the train split: {missing[:5]} ({len(missing)} in all)")
    if len(set(ids)) != len(ids):
        raise ValueError("lottery sample has duplicate ids")
    return train.loc[ids].reset_index(drop=True)


def valid_subset(split_df: pd.DataFrame, size: int | None, seed: int) -> pd.DataFrame:
    """A stratified, seeded subset of the valid split (``None`` or too large = all rows),
    in split order."""
    valid = split_df[split_df["split"] == "valid"].reset_index(drop=True)
    if len(valid) == 0:
        raise ValueError("split has no valid rows")
    if size is None or size >= len(valid):
        return valid
    from sklearn.model_selection import train_test_split

    labels = valid["label"].to_numpy()
    stratify = labels if np.unique(labels, return_counts=True)[1].min() >= 2 else None
    rows, _ = train_test_split(np.arange(len(valid)), train_size=int(size), stratify=stratify, random_state=seed)
    return valid.iloc[np.sort(rows)].reset_index(drop=True)


def build_task(
    split_df: pd.DataFrame,
    sample_ids: Sequence[str],
    *,
    model_dir: str | Path,
    rate: float,
    seed: int,
    params: dict,
    train: dict,
    valid_size: int | None,
    metric: str,
    max_length: int,
    dtype: str,
    workdir: str | Path | None = None,
    device: str = "cpu",
    threads: int = 1,
    progress: bool = True,
) -> PruneTask:
    """The pruning task of one search: the lottery rows, a stratified validation subset
    (seeded by ``seed``), the short-training recipe of ``prune.train`` (``train``) and the
    method's own section (``params``). ``rate`` is a percent."""
    if not 0 < float(rate) < 100:
        raise ValueError(f"prune rate is a percent in (0, 100) (as in prune.rates), got {rate}")
    rows = lottery_rows(split_df, sample_ids)
    valid = valid_subset(split_df, valid_size, seed)
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
    return PruneTask(
        model_dir=str(model_dir),
        train_texts=rows["text"].astype(str).tolist(),
        train_labels=rows["label"].astype(int).tolist(),
        valid_texts=valid["text"].astype(str).tolist(),
        valid_labels=valid["label"].astype(int).tolist(),
        rate=float(rate),
        train_cfg=TrainConfig.from_section(train, name="prune.train", max_length=max_length, seed=seed, dtype=dtype),
        params=dict(params),
        seed=int(seed),
        metric=metric,
        workdir=Path(workdir) if workdir is not None else None,
        device=str(device),
        threads=int(threads),
        progress=progress,
    )
