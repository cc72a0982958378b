"""SEVEN (paper 001; SEVEN_dyn as released in the official code, github xiaojinying/SEVEN,
strategies/pruner.py and utils.py): dynamic weight pruning during fine-tuning that keeps
weights with large but *stable* gradients.

At every training step k = 0 .. n-1 of the pruning window, after the optimiser step, for
every pruned Linear weight W (the post-step value) with g = |dL/dW| of this step (raw, not
clipped; zero at already-pruned weights, as the official masked forward gives):

    m = a1 m + (1 - a1) g        v = a2 v + (1 - a2) g^2
    m_hat = m / (1 - a1^(k+1))   v_hat = sqrt(v / (1 - a2^(k+1))) + eps
    S += |W * g * m_hat / v_hat|

then the fraction of weights kept is the official cubic schedule
r_k = keep + (1 - keep)(1 - (k + 1)/(n + 1))^3 (the official ``iter_num`` N is n + 1: its
window runs steps t_i .. t_i + N - 2), and the floor(r_k * total) highest S over all pruned
Linears are kept (one global threshold); a weight once pruned stays pruned and S is never
reset. Outside the window nothing is scored: a dense warm-up before it (``start_frac`` of
the steps) and recovery training at the final sparsity after it (from ``end_frac``). Our one
change to the update: the window's last step keeps exactly the rate (the official last
step keeps keep + (1 - keep)/N^3, a fraction of a weight more on BERT).

Which Linears: every Linear except the classifier, as the official code does, so the pooler
is included (``include_pooler``; the encoder Linears are ``prunable_linears``). Biases,
LayerNorms and embeddings are not pruned.

Two results per run: the weight mask (scored by the shared protocol, which applies it to the
pretrained model and trains that afresh, like every method's mask), and SEVEN's own model,
the weights it trained while pruning, evaluated on the validation subset as the official
code does after each epoch (``extras["own_model"]``, the end of training).

``seven_heads`` (ours, not in paper 001) turns the same scores into a head ranking: one dense
fine-tuning pass with the scorer updated after every step (no weight pruning, so every head
is scored on the same footing), then a head's score is the sum of S over its
query/key/value rows and its output-projection columns; the lowest-scoring heads are pruned.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import numpy as np
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from ..model.heads import head_layout, layers_of, n_pruned, prunable_linears
from ..model.sources import load_classifier, load_tokenizer
from ..model.training import attention_for_training, evaluate, train
from .baselines import keep_from_scores
from .task import PruneResult, PruneTask

log = logging.getLogger(__name__)


class SevenScorer:
    """The SEVEN score accumulator (pure tensor maths; one state per weight name)."""

    def __init__(self, a1: float, a2: float, eps: float):
        if not (0 <= a1 < 1 and 0 <= a2 < 1):
            raise ValueError(f"SEVEN: a1 and a2 must be in [0, 1), got {a1}, {a2}")
        self.a1, self.a2, self.eps = a1, a2, eps
        self.t = 0
        self.m: dict[str, torch.Tensor] = {}
        self.v: dict[str, torch.Tensor] = {}
        self.scores: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def update(
        self, weights: dict[str, torch.Tensor], grads: dict[str, torch.Tensor | None]
    ) -> dict[str, torch.Tensor]:
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
            denominator = v.div(c2).sqrt_().add_(self.eps)  # sqrt(v_hat) + eps
            step = (
                g.mul(w.detach().float()).mul_(m).div_(denominator).abs_().div_(c1)
            )  # |W g m_hat / (sqrt(v_hat) + eps)|
            self.scores[name].add_(step)
        return self.scores


def remain_ratio(k: int, n: int, keep: float) -> float:
    """The official cubic schedule: the fraction kept after window step ``k`` (0-based) of a
    window of ``n`` steps (official: ``keep + (1-keep)*(1-(iter_num+1)/N)**3`` with N = n + 1)."""
    return keep + (1 - keep) * (1 - (k + 1) / (n + 1)) ** 3


def window(total: int, start_frac: float, end_frac: float) -> tuple[int, int]:
    """[first, end) training steps of the pruning window; at least one step long."""
    if not 0 <= start_frac < end_frac <= 1:
        raise ValueError(f"SEVEN: need 0 <= start_frac < end_frac <= 1, got {start_frac}, {end_frac}")
    first = min(int(math.floor(start_frac * total)), max(0, total - 1))
    end = min(total, max(first + 1, int(round(end_frac * total))))
    return first, end


class SevenPruner:
    """The official per-step update (strategies/pruner.py ``model_masks``): score, then the
    global mask at the schedule's count. ``masks`` is updated in place (training re-applies
    that very dict after each optimiser step)."""

    def __init__(self, scorer: SevenScorer, masks: dict[str, torch.Tensor], n_keep_final: int, window_len: int):
        if window_len < 1:
            raise ValueError(f"SEVEN: the pruning window needs at least one step, got {window_len}")
        self.scorer, self.masks, self.n_keep_final, self.n = scorer, masks, n_keep_final, window_len
        self.total = sum(m.numel() for m in masks.values())

    def n_keep(self, k: int) -> int:
        """Weights kept after window step ``k``: floor(r_k * total) as the official
        ``fraction_threshold``; the last step exactly the rate."""
        if k >= self.n - 1:
            return self.n_keep_final
        return max(self.n_keep_final, int(remain_ratio(k, self.n, self.n_keep_final / self.total) * self.total))

    @torch.no_grad()
    def step(
        self, k: int, weights: dict[str, torch.Tensor], grads: dict[str, torch.Tensor | None]
    ) -> dict[str, torch.Tensor]:
        """Window step ``k`` with the post-step ``weights`` and this step's raw ``grads``."""
        masked = {n: None if g is None else g * self.masks[n].to(g.dtype) for n, g in grads.items()}
        self.scorer.update(weights, masked)
        alive = sum(int(m.sum()) for m in self.masks.values())
        new = global_keep_masks(self.scorer.scores, self.masks, min(self.n_keep(k), alive))
        for n in self.masks:
            self.masks[n].copy_(new[n])
        return self.masks


@contextlib.contextmanager
def after_optimizer_step(weights: dict[str, torch.Tensor], hook: Callable[[], None]) -> Iterator[None]:
    """Call ``hook()`` right after every optimiser step that updates ``weights`` (before the
    LR scheduler and before training re-applies the weight masks), as the official code
    scores after ``optimizer.step()``."""
    ids = {id(w) for w in weights.values()}

    def post(optimizer, args, kwargs):
        if any(id(p) in ids for group in optimizer.param_groups for p in group["params"]):
            hook()

    handle = register_optimizer_step_post_hook(post)
    try:
        yield
    finally:
        handle.remove()


@torch.no_grad()
def global_keep_masks(
    scores: dict[str, torch.Tensor], masks: dict[str, torch.Tensor], n_keep: int
) -> dict[str, torch.Tensor]:
    """Keep the ``n_keep`` highest-scoring weights over all tensors, among those ``masks``
    still keeps (pruned weights stay pruned). Ties: the lower flat index (in the dict's order)
    is kept first, so the result is deterministic and the count exact."""
    names = list(masks)
    flat = torch.cat([scores[n].reshape(-1).float().cpu() for n in names])
    alive = torch.cat([masks[n].reshape(-1).cpu() for n in names])
    if not 0 < n_keep <= int(alive.sum()):
        raise ValueError(f"cannot keep {n_keep} weights: {int(alive.sum())} are still kept")
    flat.nan_to_num_(nan=0.0).masked_fill_(~alive, -math.inf)  # flat is torch.cat's own copy
    k = flat.numel() - n_keep
    threshold = float(np.partition(flat.numpy(), k)[k])  # the n_keep-th largest (6x torch.kthvalue's speed)
    keep = flat > threshold
    missing = n_keep - int(keep.sum())
    if missing:
        keep[torch.nonzero(flat == threshold).flatten()[:missing]] = True
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
        names += [
            f"{n}.weight"
            for n, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and n.split(".")[-2:-1] == ["pooler"]
        ]
    params = dict(model.named_parameters())
    return {n: params[n] for n in names}


def _setup(task: PruneTask):
    model = load_classifier(
        task.model_dir, seed=task.train_cfg.seed, attn_implementation=attention_for_training(task.device)
    ).to(task.device)
    tokenizer = load_tokenizer(task.model_dir)
    p = task.params
    scorer = SevenScorer(float(p["a1"]), float(p["a2"]), float(p["eps"]))
    cfg = replace(task.train_cfg, epochs=float(p["epochs"]))
    return model, tokenizer, scorer, cfg


def run_weights(task: PruneTask) -> PruneResult:
    """SEVEN_dyn: unstructured weight masks at exactly ``rate`` of the pruned Linears' weights,
    and the metrics of SEVEN's own trained, pruned model."""
    start = time.perf_counter()
    model, tokenizer, scorer, cfg = _setup(task)
    p = task.params
    weights = seven_linears(model, bool(p["include_pooler"]))
    masks = {n: torch.ones_like(w, dtype=torch.bool) for n, w in weights.items()}
    total_weights = sum(w.numel() for w in weights.values())
    n_keep_final = total_weights - n_pruned(total_weights, task.rate)
    start_frac, end_frac = float(p["start_frac"]), float(p["end_frac"])
    history = []
    state = {"step": -1, "total": 0, "grads": None, "mask_seconds": 0.0, "pruner": None}

    def on_backward(step: int, total: int) -> None:  # before clipping: the raw gradient
        first, end = window(total, start_frac, end_frac)
        state["step"], state["total"] = step, total
        state["grads"] = None
        if first <= step < end:
            if state["pruner"] is None:
                state["pruner"] = SevenPruner(scorer, masks, n_keep_final, end - first)
            state["grads"] = {n: None if w.grad is None else w.grad.detach().clone() for n, w in weights.items()}

    def after_step() -> None:  # the post-step weights, as the official order
        if state["grads"] is None:
            return
        t0 = time.perf_counter()
        first, _ = window(state["total"], start_frac, end_frac)
        k = state["step"] - first
        state["pruner"].step(k, weights, state["grads"])
        state["grads"] = None
        state["mask_seconds"] += time.perf_counter() - t0
        history.append(
            {"step": state["step"], "window_step": k, "keep": sum(int(m.sum()) for m in masks.values()) / total_weights}
        )

    with after_optimizer_step(weights, after_step):
        stats = train(
            model,
            tokenizer,
            task.train_texts,
            task.train_labels,
            cfg,
            weight_masks=masks,
            on_backward=on_backward,
            progress=task.progress,
            desc="seven",
        )
    if scorer.t == 0:
        raise ValueError("SEVEN: the training schedule has no steps; raise prune.seven.epochs or the lottery sample")
    kept = sum(int(m.sum()) for m in masks.values())
    if kept != n_keep_final:
        raise RuntimeError(f"SEVEN: the window ended with {kept} weights kept, not {n_keep_final}")
    own = evaluate(model, tokenizer, task.valid_texts, task.valid_labels, max_length=cfg.max_length, dtype=cfg.dtype)
    own.pop("predictions")
    layers, heads = head_layout(model)
    first, end = window(stats["steps"], start_frac, end_frac)
    return PruneResult(
        head_keep=np.ones((layers, heads), dtype=bool),
        unit="weights",
        weight_masks={n: m.cpu() for n, m in masks.items()},
        history=history,
        extras={
            "pruned_weights": total_weights - n_keep_final,
            "total_weights": total_weights,
            "layer_sparsity": {n: 1 - float(m.float().mean()) for n, m in masks.items()},
            "own_model": {
                **own,
                "protocol": "SEVEN's own (paper 001): the weights SEVEN trained while pruning, "
                f"evaluated after its {cfg.epochs:g} epochs, not retrained",
            },
            "window": {"first_step": first, "end_step": end, "steps": stats["steps"]},
            "dense_model": True,  # unstructured: same shapes and kernels, the unpruned inference time
            "score_updates": scorer.t,
            "train_seconds": stats["seconds"],
            "mask_seconds": state["mask_seconds"],
            "seconds": time.perf_counter() - start,
        },
    )


def head_scores(model, scores: dict[str, torch.Tensor]) -> np.ndarray:
    """Sum of per-weight scores over each head's Q/K/V rows and output-projection columns: [L, H]."""
    rows = []
    for layer in layers_of(model):
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
    """SEVEN at head granularity (ours): scores from one dense fine-tuning pass (every step,
    post-step weights, raw gradients), summed per head."""
    start = time.perf_counter()
    model, tokenizer, scorer, cfg = _setup(task)
    weights = seven_linears(model, include_pooler=False)
    pending = {}

    def on_backward(step: int, total: int) -> None:
        pending["grads"] = {n: None if w.grad is None else w.grad.detach().clone() for n, w in weights.items()}

    def after_step() -> None:
        if pending.get("grads") is not None:
            scorer.update(weights, pending.pop("grads"))

    with after_optimizer_step(weights, after_step):
        stats = train(
            model,
            tokenizer,
            task.train_texts,
            task.train_labels,
            cfg,
            on_backward=on_backward,
            progress=task.progress,
            desc="seven heads",
        )
    if scorer.t == 0:
        raise ValueError("SEVEN: the training schedule has no steps; raise prune.seven.epochs or the lottery sample")
    scores = head_scores(model, scorer.scores)
    keep = keep_from_scores(scores, n_pruned(scores.size, task.rate))
    return PruneResult(
        head_keep=keep,
        extras={
            "scores": scores.tolist(),
            "score_updates": scorer.t,
            "train_seconds": stats["seconds"],
            "seconds": time.perf_counter() - start,
        },
    )
