"""Iterative global magnitude pruning of individual weights (paper 002, "Can pruning make
large language models more efficient?", section 3; the same procedure is paper 003's
baseline 1, "Iterative Magnitude Pruning").

Paper 002: "Those weights exhibiting the smallest magnitudes (i.e., falling beneath a
defined threshold) are zeroed"; "it is common practice to prune a minor proportion of
weights at any one time, subsequently fine-tuning the model. This iterative pruning process
is repeated until the desired degree of sparsity or compression is attained"; "a pruning
rate of 0.1 ... means that in each pruning step, 10% of the weights (usually the ones with
the smallest magnitudes) will be eliminated"; the targets are "self-attention and
feed-forward layers"; and "If the model is not well trained before pruning, the pruning
process may remove important weights".

What the code does, on the lottery sample:

1. fine-tune the dense classifier for ``dense_epochs`` (the model must be trained before
   its magnitudes mean anything);
2. repeat: remove the next ``step_rate`` percent of the weights (of all of them, so the
   schedule is linear: 10, 20, ... percent, the last step exactly the rate), choosing the
   smallest |w| among the weights still kept, over every encoder Linear at once (attention
   query/key/value/output and both feed-forward matrices: one global threshold); then
   fine-tune ``epochs_per_step`` epochs with the removed weights held at zero.

Biases, LayerNorms, embeddings, the pooler and the classifier are not pruned (they are not
the "self-attention and feed-forward layers"). A pruned weight never comes back.

The result is a weight mask at exactly ``rate`` percent of those weights. The model stays
dense (same shapes and kernels), so its inference time is the unpruned model's. The method's
own fine-tuned, pruned model is evaluated on the validation subset and recorded in
``extras["own_model"]`` (paper 002's protocol: prune and fine-tune the same model); the
shared protocol (:func:`lotteryprune.prune.score.score_mask`) applies the mask to the
pretrained model and trains it afresh, as it does for every method.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np
import torch

from ..model.heads import head_layout, n_pruned, prunable_linears
from ..model.sources import load_classifier, load_tokenizer
from ..model.training import attention_for_training, evaluate
from .seven import global_keep_masks
from .task import PruneResult, PruneTask


def schedule(total: int, rate: float, step_rate: float) -> list[int]:
    """Cumulative number of weights pruned after each step: ``step_rate`` percent of
    ``total`` more per step, the last step exactly ``n_pruned(total, rate)``."""
    if not 0 < step_rate <= 100:
        raise ValueError(f"magnitude: step_rate is a percent in (0, 100], got {step_rate}")
    target = n_pruned(total, rate)
    steps = max(1, math.ceil(round(rate / step_rate, 9)))
    return [min(target, n_pruned(total, min(rate, s * step_rate))) for s in range(1, steps)] + [target]


@torch.no_grad()
def magnitude_masks(
    weights: dict[str, torch.Tensor], masks: dict[str, torch.Tensor], n_prune: int
) -> dict[str, torch.Tensor]:
    """Masks pruning the ``n_prune`` smallest |w| of all ``weights`` together (already pruned
    ones count first and stay pruned)."""
    total = sum(m.numel() for m in masks.values())
    return global_keep_masks({n: w.detach().abs() for n, w in weights.items()}, masks, total - n_prune)


def run(task: PruneTask) -> PruneResult:
    start = time.perf_counter()
    p = task.params
    step_rate, dense_epochs, step_epochs = float(p["step_rate"]), float(p["dense_epochs"]), float(p["epochs_per_step"])
    model = load_classifier(
        task.model_dir, seed=task.train_cfg.seed, attn_implementation=attention_for_training(task.device)
    ).to(task.device)
    tokenizer = load_tokenizer(task.model_dir)
    params = dict(model.named_parameters())
    weights = {n: params[n] for n in prunable_linears(model)}
    masks = {n: torch.ones_like(w, dtype=torch.bool) for n, w in weights.items()}
    total = sum(w.numel() for w in weights.values())
    targets = schedule(total, task.rate, step_rate)

    def fine_tune(epochs: float, seed_offset: int, desc: str) -> float:
        if epochs <= 0:
            return 0.0
        cfg = replace(task.train_cfg, epochs=epochs, seed=task.train_cfg.seed + seed_offset)
        return task.train_on_sample(
            model,
            tokenizer,
            cfg,
            weight_masks=masks,
            progress=task.progress,
            desc=desc,
        )["seconds"]

    train_seconds = fine_tune(dense_epochs, 0, "magnitude dense")
    history, mask_seconds = [], 0.0
    for s, target in enumerate(targets, 1):
        t0 = time.perf_counter()
        new = magnitude_masks(weights, masks, target)
        newly = [weights[n].detach().abs()[masks[n] & ~new[n]] for n in masks]
        threshold = float(torch.cat(newly).max()) if sum(x.numel() for x in newly) else None
        for n in masks:
            masks[n].copy_(new[n])
        mask_seconds += time.perf_counter() - t0
        history.append({"step": s, "pruned": target, "sparsity": target / total, "threshold": threshold})
        train_seconds += fine_tune(step_epochs, s, f"magnitude {s}/{len(targets)}")
    own = evaluate(
        model,
        tokenizer,
        task.valid_texts,
        task.valid_labels,
        max_length=task.train_cfg.max_length,
        dtype=task.train_cfg.dtype,
    )
    own.pop("predictions")
    layers, heads = head_layout(model)
    return PruneResult(
        head_keep=np.ones((layers, heads), dtype=bool),
        unit="weights",
        weight_masks={n: m.cpu() for n, m in masks.items()},
        history=history,
        extras={
            "pruned_weights": targets[-1],
            "total_weights": total,
            "layer_sparsity": {n: 1 - float(m.float().mean()) for n, m in masks.items()},
            "own_model": {
                **own,
                "protocol": "paper 002: the model pruned and fine-tuned by the method itself (dense fine-tuning, then prune/fine-tune steps), not retrained",
            },
            "dense_model": True,  # unstructured: same shapes and kernels, the unpruned inference time
            "train_seconds": train_seconds,
            "mask_seconds": mask_seconds,
            "seconds": time.perf_counter() - start,
        },
    )
