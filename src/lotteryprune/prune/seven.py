"""SEVEN (seed 001; SEVEN_dyn of the official code, xiaojinying/SEVEN): dynamic weight
pruning during fine-tuning that keeps weights with large but *stable* gradients.

Per step, for every pruned Linear weight W with g = |dL/dW|:

    m = a1 m + (1 - a1) g        v = a2 v + (1 - a2) g^2
    m_hat = m / (1 - a1^t)       v_hat = v / (1 - a2^t)
    S += |W * g * m_hat / (sqrt(v_hat) + eps)|

and the fraction of weights kept follows the cubic schedule r = k + (1-k)(1 - j/N)^3
(k = 1 - rate) over a pruning window of N steps; the weights kept are the global top-r by
S over all pruned Linears, and a weight once pruned stays pruned (no regrowth). As in the
official code, the scores are updated and masks recomputed only inside the window, which
starts after ``start_frac`` of the steps (a dense warm-up) and ends at ``end_frac`` (the
rest of training recovers at the final sparsity). The last window step meets the rate
exactly.

Which Linears: every Linear except the classifier, as the official code does, so the pooler
is included by default (``include_pooler``; the encoder Linears are
``prunable_linears``).

``seven_heads`` turns the same scores into a head ranking: one dense fine-tuning pass with
the scorer updated every step (no weight pruning, so every head is scored on the same
footing), then a head's score is the sum of S over its query/key/value rows and its
output-projection columns; the lowest-scoring heads are pruned.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import replace

import numpy as np
import torch

from ..model.training import train
from .baselines import keep_from_scores
from .task import PruneResult, PruneTask
from ..model.heads import head_layout, layers_of, n_pruned, prunable_linears
from ..model.sources import load_classifier, load_tokenizer

log = logging.getLogger(__name__)


class SevenScorer:
    """The SEVEN score accumulator (pure tensor maths; one state per weight name)."""

    def __init__(self, a1: float = 0.8, a2: float = 0.9, eps: float = 1e-8):
        if not (0 <= a1 < 1 and 0 <= a2 < 1):
            raise ValueError(f"SEVEN: a1 and a2 must be in [0, 1), got {a1}, {a2}")
        self.a1, self.a2, self.eps = a1, a2, eps
        self.t = 0
        self.m: dict[str, torch.Tensor] = {}
        self.v: dict[str, torch.Tensor] = {}
        self.scores: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def update(self, weights: dict[str, torch.Tensor], grads: dict[str, torch.Tensor | None]) -> dict[str, torch.Tensor]:
        """One step: update the moments from ``grads`` and add this step's score. A missing
        (None) gradient counts as zero. Returns the accumulated scores (float32)."""
        self.t += 1
        c1 = 1 - self.a1**self.t
        c2 = 1 - self.a2**self.t
        for name, w in weights.items():
            grad = grads.get(name)
            g = torch.zeros_like(w, dtype=torch.float32) if grad is None else grad.detach().float().abs()
            if name not in self.m:
                self.m[name] = torch.zeros_like(g)
                self.v[name] = torch.zeros_like(g)
                self.scores[name] = torch.zeros_like(g)
            m, v = self.m[name], self.v[name]
            m.mul_(self.a1).add_(g, alpha=1 - self.a1)
            v.mul_(self.a2).addcmul_(g, g, value=1 - self.a2)
            step = (w.detach().float() * g * (m / c1) / ((v / c2).sqrt() + self.eps)).abs()
            self.scores[name].add_(step)
        return self.scores


def keep_fraction(step: int, total: int, keep: float, start_frac: float, end_frac: float) -> float | None:
    """The cubic schedule: the fraction of weights kept after ``step`` (0-based) of ``total``
    training steps, or None outside the pruning window. The window's last step gives ``keep``."""
    first, end = window(total, start_frac, end_frac)
    if not first <= step < end:
        return None
    n = end - first
    return keep + (1 - keep) * (1 - (step - first + 1) / n) ** 3


def window(total: int, start_frac: float, end_frac: float) -> tuple[int, int]:
    """[first, end) training steps of the pruning window; at least one step long."""
    if not 0 <= start_frac < end_frac <= 1:
        raise ValueError(f"SEVEN: need 0 <= start_frac < end_frac <= 1, got {start_frac}, {end_frac}")
    first = min(int(math.floor(start_frac * total)), max(0, total - 1))
    end = min(total, max(first + 1, int(round(end_frac * total))))
    return first, end


@torch.no_grad()
def global_keep_masks(scores: dict[str, torch.Tensor], masks: dict[str, torch.Tensor], n_keep: int) -> dict[str, torch.Tensor]:
    """Keep the ``n_keep`` highest-scoring weights over all tensors, among those ``masks``
    still keeps (pruned weights stay pruned). Ties: the lower flat index (in the dict's order)
    is kept first, so the result is deterministic and the count exact."""
    names = list(masks)
    flat = torch.cat([scores[n].reshape(-1).float().cpu() for n in names])
    alive = torch.cat([masks[n].reshape(-1).cpu() for n in names])
    if not 0 < n_keep <= int(alive.sum()):
        raise ValueError(f"cannot keep {n_keep} weights: {int(alive.sum())} are still kept")
    flat = torch.where(alive, torch.nan_to_num(flat, nan=0.0), torch.tensor(-math.inf))
    threshold = torch.kthvalue(flat, flat.numel() - n_keep + 1).values  # the n_keep-th largest
    keep = flat > threshold
    ties = torch.nonzero(flat == threshold).flatten()
    keep[ties[: n_keep - int(keep.sum())]] = True
    out, offset = {}, 0
    for n in names:
        size = masks[n].numel()
        out[n] = keep[offset : offset + size].view_as(masks[n]).to(masks[n].device)
        offset += size
    return out


def seven_linears(model, include_pooler: bool = True) -> dict[str, torch.nn.Parameter]:
    """name -> weight of every Linear SEVEN prunes (the encoder's, and the pooler's if asked)."""
    names = list(prunable_linears(model))
    if include_pooler:
        names += [f"{n}.weight" for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n.split(".")[-2:-1] == ["pooler"]]
    params = dict(model.named_parameters())
    return {n: params[n] for n in names}


def _setup(task: PruneTask):
    model = load_classifier(task.model_dir, seed=task.train_cfg.seed).to(task.device)
    tokenizer = load_tokenizer(task.model_dir)
    p = task.params
    scorer = SevenScorer(p.get("a1", 0.8), p.get("a2", 0.9), p.get("eps", 1e-8))
    cfg = replace(task.train_cfg, epochs=p.get("epochs", task.train_cfg.epochs))
    return model, tokenizer, scorer, cfg


def run_weights(task: PruneTask) -> PruneResult:
    """SEVEN_dyn: unstructured weight masks at exactly ``rate`` of the pruned Linears' weights."""
    start = time.perf_counter()
    model, tokenizer, scorer, cfg = _setup(task)
    p = task.params
    weights = seven_linears(model, p.get("include_pooler", True))
    masks = {n: torch.ones_like(w, dtype=torch.bool) for n, w in weights.items()}
    total_weights = sum(w.numel() for w in weights.values())
    n_keep_final = total_weights - int(round(task.rate * total_weights))
    start_frac, end_frac = p.get("start_frac", 0.1), p.get("end_frac", 0.7)
    history = []
    mask_seconds = 0.0

    def on_backward(step: int, total: int) -> None:
        nonlocal mask_seconds
        r = keep_fraction(step, total, n_keep_final / total_weights, start_frac, end_frac)
        if r is None:
            return
        t0 = time.perf_counter()
        scorer.update(weights, {n: w.grad for n, w in weights.items()})
        last = step == window(total, start_frac, end_frac)[1] - 1
        n_keep = n_keep_final if last else max(n_keep_final, int(round(r * total_weights)))
        n_keep = min(n_keep, sum(int(m.sum()) for m in masks.values()))
        new = global_keep_masks(scorer.scores, masks, n_keep)
        for n in masks:  # in place: train() re-applies this very dict after the step
            masks[n].copy_(new[n])
        mask_seconds += time.perf_counter() - t0
        history.append({"step": step, "keep": n_keep / total_weights})

    stats = train(model, tokenizer, task.train_texts, task.train_labels, cfg, weight_masks=masks, on_backward=on_backward, progress=task.progress, desc="seven")
    kept = sum(int(m.sum()) for m in masks.values())
    if kept != n_keep_final:  # no window step ran (an empty training schedule): prune once now
        if scorer.t == 0:
            raise ValueError("SEVEN: the training schedule has no steps; raise prune.seven.epochs or the lottery sample")
        new = global_keep_masks(scorer.scores, masks, n_keep_final)
        for n in masks:
            masks[n].copy_(new[n])
    layers, heads = head_layout(model)
    return PruneResult(
        head_keep=np.ones((layers, heads), dtype=bool),
        unit="weights",
        weight_masks={n: m.cpu() for n, m in masks.items()},
        history=history,
        extras={
            "pruned_weights": total_weights - n_keep_final,
            "total_weights": total_weights,
            "layer_sparsity": {n: 1 - float(m.float().mean()) for n, m in masks.items()},
            "score_updates": scorer.t,
            "train_seconds": stats["seconds"],
            "mask_seconds": mask_seconds,
            "seconds": time.perf_counter() - start,
        },
    )


def head_scores(model, scores: dict[str, torch.Tensor]) -> np.ndarray:
    """Sum of per-weight scores over each head's Q/K/V rows and output-projection columns: [L, H]."""
    rows = []
    for i, layer in enumerate(layers_of(model)):
        attn = layer.attention.self
        d = attn.attention_head_size
        prefix = next(n for n, m in model.named_modules() if m is layer)
        total = 0
        for part in ("attention.self.query", "attention.self.key", "attention.self.value"):
            s = scores[f"{prefix}.{part}.weight"]
            total = total + s.view(-1, d, s.shape[1]).sum((1, 2))
        s = scores[f"{prefix}.attention.output.dense.weight"]
        total = total + s.view(s.shape[0], -1, d).sum((0, 2))
        rows.append(total.double().cpu().numpy())
    return np.stack(rows)


def run_heads(task: PruneTask) -> PruneResult:
    """SEVEN at head granularity: scores from one dense fine-tuning pass, summed per head."""
    start = time.perf_counter()
    model, tokenizer, scorer, cfg = _setup(task)
    weights = seven_linears(model, include_pooler=False)

    def on_backward(step: int, total: int) -> None:
        scorer.update(weights, {n: w.grad for n, w in weights.items()})

    stats = train(model, tokenizer, task.train_texts, task.train_labels, cfg, on_backward=on_backward, progress=task.progress, desc="seven heads")
    if scorer.t == 0:
        raise ValueError("SEVEN: the training schedule has no steps; raise prune.seven.epochs or the lottery sample")
    scores = head_scores(model, scorer.scores)
    keep = keep_from_scores(scores, n_pruned(scores.size, task.rate))
    return PruneResult(
        head_keep=keep,
        extras={"scores": scores.tolist(), "score_updates": scorer.t, "train_seconds": stats["seconds"], "seconds": time.perf_counter() - start},
    )
