"""The one way a mask is scored: short training of the physically pruned pretrained model
on the lottery sample, then metrics on a validation subset. The same recipe scores a GA
individual and every method's final mask, so their validation scores compare.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..model.heads import prune_structure
from ..model.sources import load_classifier, load_tokenizer
from ..model.training import TrainConfig, attention_for_training, evaluate
from .task import PruneTask


def score_mask(
    task: PruneTask,
    head_keep: np.ndarray | None = None,
    weight_masks: dict[str, torch.Tensor] | None = None,
    *,
    cfg: TrainConfig | None = None,
    neuron_keep: np.ndarray | None = None,
) -> dict:
    """Validation metrics of the pretrained model pruned by the mask after short training.

    The same recipe scores a GA individual and every method's final mask, so the methods'
    validation F1s are comparable. Heads (and, with ``neuron_keep`` [layers, intermediate],
    feed-forward neurons) are removed physically (a smaller, faster model).
    """
    cfg = cfg or task.train_cfg
    start = time.perf_counter()
    model = load_classifier(task.model_dir, seed=cfg.seed, attn_implementation=attention_for_training(task.device))
    prune_structure(model, head_keep, neuron_keep)
    model.to(task.device)
    tokenizer = load_tokenizer(task.model_dir)
    stats = task.train_on_sample(model, tokenizer, cfg, weight_masks=weight_masks, progress=False)
    metrics = evaluate(
        model, tokenizer, task.valid_texts, task.valid_labels, max_length=cfg.max_length, dtype=cfg.dtype
    )
    metrics.pop("predictions")
    metrics["train_seconds"] = stats["seconds"]
    metrics["seconds"] = time.perf_counter() - start
    return metrics
