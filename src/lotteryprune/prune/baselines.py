"""Head-pruning baselines: random, gradient importance (Michel et al. 2019), attention
entropy and attention to [SEP] (paper 003's baselines 4 and 5, with their orders reversed as
the named variants ``entropy_reversed`` and ``sep_reversed``), and ``magnitude_heads``, a
head-level adaptation of magnitude pruning (paper 002's own, weight-level method is
:mod:`lotteryprune.prune.magnitude`).

Every method returns a keep-mask over heads with exactly ``n_pruned(L*H, rate)``
heads removed. Ties in a score are broken deterministically: among equal scores the head
with the lower (layer, head) index is pruned first.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import numpy as np
import torch

from ..model import attention
from ..model.batching import collate, encode, length_sorted_batches
from ..model.heads import gated, head_layout, layers_of, n_pruned, random_keep_mask, saved_layout
from ..model.sources import load_classifier, load_tokenizer
from ..model.training import attention_for_training
from .task import PruneResult, PruneTask

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- shared helpers


def keep_from_scores(scores: np.ndarray, n_prune: int, pruned: np.ndarray | None = None) -> np.ndarray:
    """Keep-mask removing the ``n_prune`` lowest-scoring heads (already ``pruned`` ones first).

    ``scores`` [layers, heads]; a higher score means more worth keeping. Heads already
    pruned stay pruned (``n_prune`` must be at least their number). Ties: lower flat index
    pruned first.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if not np.isfinite(scores).all():
        raise ValueError(f"head scores contain NaN or inf: {scores.tolist()}")
    flat = scores.ravel().copy()
    if pruned is not None:
        pruned = np.asarray(pruned, dtype=bool).ravel()
        if pruned.sum() > n_prune:
            raise ValueError(f"{int(pruned.sum())} heads already pruned, more than the {n_prune} asked for")
        flat[pruned] = -np.inf
    if not 0 <= n_prune < flat.size:
        raise ValueError(f"cannot prune {n_prune} of {flat.size} heads")
    order = np.argsort(flat, kind="stable")  # ascending, ties by index
    keep = np.ones(flat.size, dtype=bool)
    keep[order[:n_prune]] = False
    return keep.reshape(scores.shape)


def _load(task: PruneTask, *, eager: bool = False):
    attn = "eager" if eager else attention_for_training(task.device)
    model = load_classifier(task.model_dir, seed=task.train_cfg.seed, attn_implementation=attn)
    model.to(task.device)
    return model, load_tokenizer(task.model_dir)


def _slices(target: int, steps: int) -> list[int]:
    """Cumulative prune counts after each of ``steps`` iterations, ending at ``target``."""
    return [int(round(target * s / steps)) for s in range(1, steps + 1)]


# --------------------------------------------------------------------------- random


def run_random(task: PruneTask) -> PruneResult:
    """One random keep-mask with exactly the rate's number of heads removed. Each search
    seed is one draw (``prune.random.draws`` of them), seeded by (seed, rate) so draws at
    different rates are independent."""
    start = time.perf_counter()
    layers, heads = saved_layout(task.model_dir)
    rng = np.random.default_rng([task.seed, int(round(task.rate * 100))])
    return PruneResult(
        head_keep=random_keep_mask(layers, heads, task.rate, rng), extras={"seconds": time.perf_counter() - start}
    )


# --------------------------------------------------------------------------- magnitude


@torch.no_grad()
def head_magnitudes(model) -> np.ndarray:
    """Mean |w| of each head's query/key/value rows and output-projection columns: [L, H]."""
    rows = []
    for layer in layers_of(model):
        attn = layer.attention.self
        d = attn.attention_head_size
        qkv = sum(
            lin.weight.detach().abs().float().view(-1, d, lin.in_features).sum((1, 2))
            for lin in (attn.query, attn.key, attn.value)
        )
        dense = layer.attention.output.dense
        out = dense.weight.detach().abs().float()
        out = out.view(out.shape[0], -1, d).sum((0, 2))
        per_head = 3 * d * attn.query.in_features + d * dense.out_features
        rows.append(((qkv + out) / per_head).cpu().numpy())
    return np.stack(rows)


def run_magnitude_heads(task: PruneTask) -> PruneResult:
    """Iterative head magnitude pruning (ours, not a paper's method: paper 002 prunes
    weights): prune a slice of the lowest-magnitude heads, fine-tune (pruned heads gated to
    0) on the lottery sample for ``epochs / steps``, repeat until the rate. A head's
    magnitude is the L1 of its Q/K/V rows and output columns per parameter."""
    start = time.perf_counter()
    steps = int(task.params["steps"])
    model, tokenizer = _load(task)
    layers, heads = head_layout(model)
    keep = np.ones((layers, heads), dtype=bool)
    targets = _slices(n_pruned(layers * heads, task.rate), steps)
    step_cfg = replace(task.train_cfg, epochs=task.train_cfg.epochs / steps)
    history, train_seconds = [], 0.0
    for s, target in enumerate(targets, 1):
        scores = head_magnitudes(model)
        keep = keep_from_scores(scores, target, ~keep)
        history.append({"step": s, "pruned": int((~keep).sum()), "scores": scores.tolist()})
        if s < steps:  # the final fine-tuning is the caller's (score_mask)
            gates = torch.as_tensor(keep, dtype=torch.float32, device=task.device)
            with gated(model, gates):
                stats = task.train_on_sample(
                    model,
                    tokenizer,
                    replace(step_cfg, seed=step_cfg.seed + s),
                    progress=task.progress,
                    desc=f"magnitude {s}/{steps}",
                )
            train_seconds += stats["seconds"]
    return PruneResult(
        head_keep=keep,
        history=history,
        extras={
            "scores": history[-1]["scores"],
            "train_seconds": train_seconds,
            "seconds": time.perf_counter() - start,
        },
    )


# --------------------------------------------------------------------------- importance


def head_importance(
    model, tokenizer, texts, labels, keep: np.ndarray, *, batch_size: int, max_length: int
) -> np.ndarray:
    """Michel et al.'s head importance: sum over batches of |d loss / d gate| with the gates
    at ``keep`` (pruned heads at 0), normalised per layer by its L2 norm. [L, H]."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:  # only the gates need gradients
        p.requires_grad_(False)
    ids = encode(tokenizer, texts, max_length)
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64), device=device)
    total = torch.zeros(keep.shape, dtype=torch.float64)
    try:
        for idx in length_sorted_batches([len(x) for x in ids], batch_size):
            gates = torch.as_tensor(keep, dtype=torch.float32, device=device).requires_grad_(True)
            batch = collate(tokenizer, ids, idx, device)
            with gated(model, gates):
                logits = model(**batch).logits
            loss = torch.nn.functional.cross_entropy(logits.float(), y[idx])
            (grad,) = torch.autograd.grad(loss, gates)
            total += grad.detach().abs().double().cpu()
    finally:
        for p in frozen:
            p.requires_grad_(True)
        model.train(was_training)
    norm = total.pow(2).sum(-1, keepdim=True).sqrt()
    return (total / (norm + 1e-20)).numpy()


def run_importance(task: PruneTask) -> PruneResult:
    """Iterative gradient head importance (Michel et al. 2019) on the lottery sample.

    The classifier is first fine-tuned on the lottery sample (``finetune``, the training
    budget): a random classification head makes the loss gradient meaningless. Then
    ``steps`` times: score the heads with the pruned ones gated to 0, prune the next slice.
    """
    start = time.perf_counter()
    steps = int(task.params["steps"])
    model, tokenizer = _load(task)
    train_seconds = 0.0
    if task.params["finetune"]:
        train_seconds = task.train_on_sample(
            model,
            tokenizer,
            task.train_cfg,
            progress=task.progress,
            desc="importance fine-tune",
        )["seconds"]
    layers, heads = head_layout(model)
    keep = np.ones((layers, heads), dtype=bool)
    history = []
    for s, target in enumerate(_slices(n_pruned(layers * heads, task.rate), steps), 1):
        scores = head_importance(
            model,
            tokenizer,
            task.train_texts,
            task.train_labels,
            keep,
            batch_size=task.train_cfg.batch_size,
            max_length=task.train_cfg.max_length,
        )
        keep = keep_from_scores(scores, target, ~keep)
        history.append({"step": s, "pruned": int((~keep).sum()), "scores": scores.tolist()})
    return PruneResult(
        head_keep=keep,
        history=history,
        extras={"scores": history[0]["scores"], "train_seconds": train_seconds, "seconds": time.perf_counter() - start},
    )


# --------------------------------------------------------------------------- attention statistics


def attention_statistics(task: PruneTask) -> dict[str, np.ndarray]:
    """Mean attention entropy (nats) and mean attention to [SEP] per head ([L, H] each), over
    every valid query token of the lottery sample (``batches`` caps the number of batches;
    null = all of them), computed on the pretrained model. Padded query rows are left out;
    padded keys carry no probability."""
    model, tokenizer = _load(task, eager=True)
    sep = tokenizer.sep_token_id
    if sep is None:
        raise ValueError(f"{task.model_dir}: the tokenizer has no [SEP] token")
    layers, heads = head_layout(model)
    entropy = torch.zeros(layers, heads, dtype=torch.float64)
    to_sep = torch.zeros(layers, heads, dtype=torch.float64)
    tokens = 0.0
    for batch in attention.attention_batches(
        model,
        tokenizer,
        task.train_texts,
        batch_size=task.train_cfg.batch_size,
        max_length=task.train_cfg.max_length,
        max_batches=task.params["batches"],
        seed=task.seed,
        progress=task.progress,
    ):
        e, n = attention.head_entropy_sums(batch["attentions"], batch["attention_mask"])
        s, _ = attention.head_token_attention_sums(
            batch["attentions"], batch["attention_mask"], batch["input_ids"], sep
        )
        entropy += e.double().cpu()
        to_sep += s.double().cpu()
        tokens += n
    return {"entropy": (entropy / tokens).numpy(), "sep": (to_sep / tokens).numpy()}


def _run_attention(task: PruneTask, kind: str, *, reversed_order: bool = False) -> PruneResult:
    """Head importance = the statistic ``kind`` (paper 003: higher = more important), so the
    heads with the lowest value are pruned first; ``reversed_order`` prunes the highest first."""
    start = time.perf_counter()
    stats = attention_statistics(task)
    value = stats[kind]
    keep = keep_from_scores(-value if reversed_order else value, n_pruned(value.size, task.rate))
    return PruneResult(
        head_keep=keep,
        extras={
            "scores": value.tolist(),
            "order": "highest first" if reversed_order else "lowest first",
            "entropy": stats["entropy"].tolist(),
            "sep": stats["sep"].tolist(),
            "seconds": time.perf_counter() - start,
        },
    )


def run_entropy(task: PruneTask) -> PruneResult:
    """Paper 003, baseline 5: "The higher the entropy, the more evenly distributed the
    attention weights are, indicating a more important and informative head", so the heads
    with the lowest mean attention entropy are pruned first."""
    return _run_attention(task, "entropy")


def run_sep(task: PruneTask) -> PruneResult:
    """Paper 003, baseline 4: "remove the attention heads with the lowest average attention
    weight to the SEP token iteratively until the desired level of sparsity is attained"."""
    return _run_attention(task, "sep")


def run_entropy_reversed(task: PruneTask) -> PruneResult:
    """Not paper 003's order: the highest-entropy (broadest) heads go first, i.e. the
    confident, peaked heads are kept (Voita et al. 2019's "confidence" reading)."""
    return _run_attention(task, "entropy", reversed_order=True)


def run_sep_reversed(task: PruneTask) -> PruneResult:
    """Not paper 003's order: the heads paying the most attention to [SEP] go first (Clark
    et al. 2019: attention to [SEP] acts as a no-op)."""
    return _run_attention(task, "sep", reversed_order=True)
