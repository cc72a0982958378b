"""What every pruning method shares: the task it is given, the result it returns, and the
one way a mask is scored (short training on the lottery sample, F1 on a validation subset).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .. import modeling
from ..training import TrainConfig, evaluate, train


@dataclass
class PruneTask:
    """Everything a method may use. ``rate`` is the fraction of heads (or weights) removed."""

    model_dir: str
    train_texts: Sequence[str]  # the lottery sample
    train_labels: Sequence[int]
    valid_texts: Sequence[str]  # the validation subset masks are scored on
    valid_labels: Sequence[int]
    rate: float
    train_cfg: TrainConfig
    params: dict = field(default_factory=dict)  # the method's own config section
    seed: int = 0
    workdir: Path | None = None  # for checkpoints (resume after a kill)
    device: str = "cpu"
    threads: int = 1
    progress: bool = True


@dataclass
class PruneResult:
    head_keep: np.ndarray  # [layers, heads] bool; all True for weight-level methods
    unit: str = "heads"  # "heads" or "weights"
    weight_masks: dict[str, torch.Tensor] | None = None  # weight-level methods: name -> bool mask
    history: list[dict] = field(default_factory=list)  # per generation / step, method-defined
    extras: dict = field(default_factory=dict)  # anything else worth recording (scores, ...)

    def achieved_rate(self) -> float:
        if self.unit == "weights":
            total = sum(m.numel() for m in self.weight_masks.values())
            return 1.0 - sum(int(m.sum()) for m in self.weight_masks.values()) / total
        return 1.0 - float(self.head_keep.mean())


def score_mask(
    task: PruneTask,
    head_keep: np.ndarray | None = None,
    weight_masks: dict[str, torch.Tensor] | None = None,
    *,
    cfg: TrainConfig | None = None,
) -> dict:
    """Validation metrics of the pretrained model pruned by the mask after short training.

    The same recipe scores a GA individual and every method's final mask, so the methods'
    validation F1s are comparable. Heads are removed physically (a smaller, faster model).
    """
    cfg = cfg or task.train_cfg
    start = time.perf_counter()
    model = modeling.load_classifier(task.model_dir, seed=cfg.seed)
    if head_keep is not None and not np.asarray(head_keep).all():
        modeling.prune_heads(model, head_keep)
    model.to(task.device)
    tokenizer = modeling.load_tokenizer(task.model_dir)
    stats = train(model, tokenizer, task.train_texts, task.train_labels, cfg, weight_masks=weight_masks, progress=False)
    metrics = evaluate(model, tokenizer, task.valid_texts, task.valid_labels, max_length=cfg.max_length)
    metrics["train_seconds"] = stats["seconds"]
    metrics["seconds"] = time.perf_counter() - start
    return metrics
