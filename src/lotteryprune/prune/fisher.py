"""Kwon et al. (2022), "A Fast Post-Training Pruning Framework for Transformers"
(arXiv 2204.09656; official code github.com/WoosukKwon/retraining-free-pruning), as a
competitor of the GA (issue #18), written here for CPU and GPU with torch only.

Two methods share this module and the config section ``prune.fisher``:

* ``fisher_heads``: heads only, the GA's search space and rate (percent of heads pruned,
  ``unit: heads``); a layer left with no head goes, feed-forward included, as for the GA;
* ``fisher``: heads and feed-forward neurons under a FLOPs budget (``unit: flops``: the
  rate is the percent of the encoder's forward FLOPs removed at ``seq_len``, see
  :class:`lotteryprune.model.cost.UnitCosts`); attention and feed-forward of a layer are
  independent, as in Kwon et al.

Pipeline (one search seed), as the official ``main.py``:

0. **fine-tuned model**: Kwon et al. prune a model already fine-tuned on the task; here a
   copy of the pretrained model is trained on the lottery sample with the shared recipe
   (``prune.train``; ``finetune: true``), as the ``importance`` baseline does;
1. **Fisher**: gradients of the cross-entropy on the true labels w.r.t. head and neuron
   masks at 1 (parameters frozen, eval mode); importance = sum of squared gradients.
   ``gradients: per_sample`` (default) takes one gradient per lottery text (one backward
   pass per batch, with per-sample gates); ``per_batch`` is the official code's
   (batch-mean loss, one gradient per batch of ``batch_size``);
2. **search**: under the FLOPs budget, for every number n of heads keep the n most
   important heads and fill the rest of the budget with the most important neurons; keep
   the n with the largest total importance (exact for the diagonal Fisher: all heads cost
   the same and all neurons cost the same). Heads only: the rate's number of heads with
   the least importance go;
3. **rearrangement** (``rearrange``): within each layer and unit type, with the count
   fixed, the official greedy swap pass minimising the block-diagonal Fisher loss
   ``|sum_{pruned j} g_j|^2``;
4. **mask tuning** (``tune``): layer by layer, real-valued scales of the kept heads (then
   neurons) fitted by damped linear least squares so that the pruned layer's pre-LayerNorm
   output matches a teacher's (``teacher: sqrt``: the model pruned at the square root of
   the constraint, as the official code; ``unpruned``: the full model). ``solver: lsmr``
   is the official solver (LSMR on the damped normal equations, with its tolerances,
   condition limit and iteration cap; a stop short of convergence is a failed solve);
   ``solver: lstsq`` solves the same damped problem exactly with ``torch.linalg.lstsq``
   (on the model's device). Layer-0 heads are not tuned; a failed or out-of-bounds
   (|s| > 10) solve stops tuning there and in every later layer, as the official code.

What the pipeline compares is the binary mask: every method's mask goes through the same
protocol (:func:`lotteryprune.prune.score.score_mask`, then the final fine-tuning from the
pretrained weights). Kwon et al.'s own, retraining-free result (the step-0 model with the
tuned masks, no training after pruning) is evaluated on the validation subset and kept in
the summary (``extras.retraining_free``), next to the same model with the binary masks and
unpruned, so the effect of rearrangement and tuning is measured too. docs/methods.md lists
the deviations from the paper.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch

from ..model.batching import collate, encode, length_sorted_batches
from ..model.cost import UnitCosts
from ..model.heads import gated, layers_of, n_pruned
from ..model.sources import load_classifier, load_tokenizer
from ..model.training import attention_for_training, evaluate
from .task import PruneResult, PruneTask

log = logging.getLogger(__name__)

SCALE_BOUND = 10.0  # the official code stops tuning at a scale outside [-10, 10]


@dataclass(frozen=True)
class FisherParams:
    """``prune.fisher``."""

    finetune: bool  # step 0: train on the lottery sample before the Fisher (Kwon et al. start fine-tuned)
    gradients: str  # per_sample | per_batch (the official code)
    batch_size: int  # texts per Fisher / tuning batch (official: 32)
    seq_len: int  # sequence length of the FLOPs budget (fisher; use bench.seq_len)
    rearrange: bool
    tune: bool
    teacher: str  # sqrt (official code) | unpruned
    damp: float  # damping of the scales toward 1 (official LSMR: 1)
    solver: str  # lsmr (the official solver and its stopping rules) | lstsq (exact damped minimiser, torch)

    @classmethod
    def from_section(cls, section: dict) -> FisherParams:
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(section) - set(names))
        if unknown:
            raise KeyError(f"config prune.fisher: unknown keys {unknown}; known: {names}")
        missing = [n for n in names if n not in section]
        if missing:
            raise KeyError(f"config prune.fisher: missing keys {missing}")
        params = cls(**{n: section[n] for n in names})
        if params.gradients not in ("per_sample", "per_batch"):
            raise ValueError(f"config prune.fisher.gradients: per_sample or per_batch, got {params.gradients!r}")
        if params.teacher not in ("sqrt", "unpruned"):
            raise ValueError(f"config prune.fisher.teacher: sqrt or unpruned, got {params.teacher!r}")
        if params.damp < 0:
            raise ValueError(f"config prune.fisher.damp must be >= 0, got {params.damp}")
        if params.solver not in ("lsmr", "lstsq"):
            raise ValueError(f"config prune.fisher.solver: lsmr or lstsq, got {params.solver!r}")
        return params


# --------------------------------------------------------------------------- 1. Fisher


def _frozen(model):
    """Parameters that required grad, now frozen (give them back with requires_grad_(True))."""
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    return frozen


def mask_gradients(
    model,
    tokenizer,
    texts,
    labels,
    *,
    neurons: bool,
    per_sample: bool = True,
    batch_size: int = 32,
    max_length: int = 64,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gradients of the cross-entropy (true labels) w.r.t. head masks [L, H] and, with
    ``neurons``, neuron masks [L, F], all at 1: ``[N, L, H]`` and ``[N, L, F]`` (CPU, fp32).

    ``per_sample``: N = number of texts, one gradient per text (gates with a batch
    dimension, summed loss: one backward pass per batch). Otherwise N = number of batches
    of ``batch_size`` consecutive texts, the gradient of the batch-mean loss (the official
    code's ``collect_mask_grads``)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    frozen = _frozen(model)
    layers = layers_of(model)
    L, H = len(layers), layers[0].attention.self.num_attention_heads
    F = layers[0].intermediate.dense.out_features
    ids = encode(tokenizer, texts, max_length)
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64), device=device)
    if per_sample:
        batches = length_sorted_batches([len(x) for x in ids], batch_size)
    else:
        batches = [np.arange(i, min(i + batch_size, len(ids))) for i in range(0, len(ids), batch_size)]
    head_grads, neuron_grads, order = [], [], []
    try:
        for idx in batches:
            batch = collate(tokenizer, ids, idx, device)
            lead = (len(idx),) if per_sample else ()
            hg = torch.ones(*lead, L, H, device=device, requires_grad=True)
            ng = torch.ones(*lead, L, F, device=device, requires_grad=True) if neurons else None
            with gated(model, hg, ng):
                logits = model(**batch).logits
            loss = torch.nn.functional.cross_entropy(logits.float(), y[idx], reduction="sum" if per_sample else "mean")
            grads = torch.autograd.grad(loss, [hg] + ([ng] if neurons else []))
            head_grads.append(grads[0].detach().float().cpu().reshape(-1, L, H))
            if neurons:
                neuron_grads.append(grads[1].detach().float().cpu().reshape(-1, L, F))
            order.append(np.asarray(idx))
    finally:
        for p in frozen:
            p.requires_grad_(True)
        model.train(was_training)
    if per_sample:  # back to the texts' order
        inverse = np.argsort(np.concatenate(order), kind="stable")
        hg_all = torch.cat(head_grads)[inverse]
        ng_all = torch.cat(neuron_grads)[inverse] if neurons else None
    else:
        hg_all = torch.cat(head_grads)
        ng_all = torch.cat(neuron_grads) if neurons else None
    return hg_all, ng_all


def fisher_information(grads: torch.Tensor) -> np.ndarray:
    """Diagonal empirical Fisher: the sum of squared gradients over samples (or batches)."""
    return grads.double().pow(2).sum(0).numpy()


# --------------------------------------------------------------------------- 2. search


def _keep_order(scores: np.ndarray) -> np.ndarray:
    """Flat indices most important first; among equal scores the higher index first, so
    the lower index is pruned first (as ``baselines.keep_from_scores``)."""
    return np.argsort(np.asarray(scores, dtype=np.float64).ravel(), kind="stable")[::-1]


def top_keep(scores: np.ndarray, n_keep: int) -> np.ndarray:
    """Keep-mask of the ``n_keep`` highest scores (shape of ``scores``)."""
    keep = np.zeros(np.asarray(scores).size, dtype=bool)
    keep[_keep_order(scores)[: int(n_keep)]] = True
    return keep.reshape(np.shape(scores))


def search_flops(
    head_importance: np.ndarray, neuron_importance: np.ndarray, costs: UnitCosts, budget: float
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Kwon et al.'s ``search_mac`` on FLOPs: the head and neuron keep-masks of the largest
    total importance whose encoder FLOPs (``costs``) are at most ``budget``.

    Every count of heads n = 0..L*H is tried (the official code starts at 1), with the top-n
    heads and as many top neurons as the rest of the budget pays for; a count whose heads
    alone exceed the budget ends the enumeration (the official code scores it anyway and
    may return a mask over budget). Ties: the smaller n."""
    h_order, n_order = _keep_order(head_importance), _keep_order(neuron_importance)
    h_cum = np.concatenate([[0.0], np.cumsum(np.asarray(head_importance, np.float64).ravel()[h_order])])
    n_cum = np.concatenate([[0.0], np.cumsum(np.asarray(neuron_importance, np.float64).ravel()[n_order])])
    total_neurons = len(n_order)
    best = None
    for n in range(len(h_order) + 1):
        rest = budget - n * costs.per_head
        if rest < 0:
            break
        k = min(int(math.floor(rest / costs.per_neuron)), total_neurons)
        while k > 0 and k * costs.per_neuron > rest:  # floating point guard: never over budget
            k -= 1
        value = h_cum[n] + n_cum[k]
        if best is None or value > best[0]:
            best = (value, n, k)
    if best is None:
        raise ValueError(f"FLOPs budget {budget:.4g} is negative")
    _, n, k = best
    heads = np.zeros(h_order.size, dtype=bool)
    heads[h_order[:n]] = True
    neurons = np.zeros(n_order.size, dtype=bool)
    neurons[n_order[:k]] = True
    return (
        heads.reshape(np.shape(head_importance)),
        neurons.reshape(np.shape(neuron_importance)),
        {"heads": int(n), "neurons": int(k), "importance": float(best[0])},
    )


# --------------------------------------------------------------------------- 3. rearrangement


def rearrange_row(keep: np.ndarray, grads: torch.Tensor) -> np.ndarray:
    """The official ``greedy_rearrange`` for one layer: ``keep`` [n] (only its count
    matters), ``grads`` [N, n] (per-sample or per-batch gradients of the layer's masks).

    Start from pruning the layer's ``n_pruned`` lowest-Fisher units; visit the others from
    the least to the most important: tentatively prune it too, then restore the one unit
    of the pruned set whose return leaves the smallest ``|sum_{pruned} g|^2``."""
    keep = np.asarray(keep, dtype=bool)
    n_prune = int((~keep).sum())
    if n_prune == 0 or n_prune == keep.size:
        return keep.copy()
    g = grads.double().t().contiguous()  # [n, N]: unit j's gradient vector
    sq = g.pow(2).sum(1)
    order = np.argsort(sq.numpy(), kind="stable").tolist()
    pruned = order[:n_prune]
    total = g[pruned].sum(0)
    for index in order[n_prune:]:
        pruned.append(index)
        total = total + g[index]
        cand = g[pruned]
        # |total - g_p|^2 for every p in the pruned set: the loss if p is restored
        loss = total.pow(2).sum() - 2 * (cand @ total) + sq[pruned]
        removed = int(torch.argmin(loss))
        total = total - g[pruned[removed]]
        del pruned[removed]
    out = np.ones(keep.size, dtype=bool)
    out[pruned] = False
    return out


def rearrange(keep: np.ndarray, grads: torch.Tensor) -> np.ndarray:
    """:func:`rearrange_row` for every layer: ``keep`` [L, n], ``grads`` [N, L, n]."""
    return np.stack([rearrange_row(keep[i], grads[:, i, :]) for i in range(keep.shape[0])])


def block_fisher_loss(keep: np.ndarray, grads: torch.Tensor) -> float:
    """sum over layers of |sum_{pruned j} g_j|^2 (the rearrangement's objective)."""
    pruned = torch.as_tensor(~np.asarray(keep, dtype=bool), dtype=torch.float64)  # [L, n]
    per_sample = torch.einsum("bln,ln->bl", grads.double(), pruned)
    return float(per_sample.pow(2).sum())


def rearrange_masks(
    heads: np.ndarray,
    neurons: np.ndarray | None,
    head_grads: torch.Tensor,
    neuron_grads: torch.Tensor | None,
    *,
    apply: bool = True,
) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """:func:`rearrange` of a head mask and (if any) a neuron mask, and the record of it:
    units moved, :func:`block_fisher_loss` before and after (``apply=False``: the masks
    unchanged, the record of the loss only)."""
    new_heads = rearrange(heads, head_grads) if apply else heads
    new_neurons = None if neurons is None else (rearrange(neurons, neuron_grads) if apply else neurons)

    def loss(h, n):
        return {
            "heads": block_fisher_loss(h, head_grads),
            "neurons": None if n is None else block_fisher_loss(n, neuron_grads),
        }

    record = {
        "heads_moved": int((new_heads != heads).sum()) // 2,
        "neurons_moved": None if neurons is None else int((new_neurons != neurons).sum()) // 2,
        "block_fisher_loss_before": loss(heads, neurons),
        "block_fisher_loss_after": loss(new_heads, new_neurons),
    }
    return new_heads, new_neurons, record


# --------------------------------------------------------------------------- 4. mask tuning


LSMR_TOL = 1e-6  # the official solver's atol = btol (scipy's and cupy's defaults)
LSMR_CONLIM = 1e8


def solve_scales_lsmr(ata: torch.Tensor, atb: torch.Tensor, damp: float) -> torch.Tensor:
    """The official ``lsmr_cupy_solver``: LSMR (scipy's, of which cupy's is a port; here on
    the CPU in float64) on ``M d = r`` with M = A^T A, r = A^T b - M 1, ``damp``, the
    default tolerances (1e-6), condition limit (1e8) and iteration cap (the number of
    unknowns); x = 1 + d. A stop other than convergence (LSMR's istop >= 3: condition
    limit or iteration cap reached) is a failed solve, returned as NaN scales (the official
    code then stops tuning)."""
    from scipy.sparse.linalg import lsmr

    M = ata.double().cpu().numpy()
    r = atb.double().cpu().numpy() - M.sum(1)
    d, istop = lsmr(M, r, damp=damp, atol=LSMR_TOL, btol=LSMR_TOL, conlim=LSMR_CONLIM)[:2]
    if istop >= 3:
        return torch.full((M.shape[0],), float("nan"), dtype=torch.float64)
    return torch.as_tensor(d + 1.0, dtype=torch.float64)


def solve_scales(ata: torch.Tensor, atb: torch.Tensor, damp: float) -> torch.Tensor:
    """The minimiser the official solver approaches: scales x = 1 + d, where d minimises
    ``|M d - r|^2 + damp^2 |d|^2`` with M = A^T A and r = A^T b - M 1 (damped least squares
    on the normal equations, pulling the scales toward 1), solved exactly with
    ``torch.linalg.lstsq`` on the stacked system [M; damp I] d = [r; 0]. float64; on the
    device of ``ata`` (``solver: lstsq``; :func:`solve_scales_lsmr` is ``solver: lsmr``)."""
    M = ata.double()
    r = atb.double() - M.sum(1)
    k = M.shape[0]
    if damp > 0:
        A = torch.cat([M, damp * torch.eye(k, dtype=M.dtype, device=M.device)])
        rhs = torch.cat([r, torch.zeros(k, dtype=M.dtype, device=M.device)])
    else:
        A, rhs = M, r
    d = torch.linalg.lstsq(A, rhs.unsqueeze(1)).solution.squeeze(1)
    return d + 1.0


class _Stop(Exception):
    """Raised by a capture hook: the rest of the forward pass is not needed."""


def _capture(model, module, head_gates, neuron_gates, batches, *, post=None):
    """Inputs (args) of ``module`` in a forward pass of every batch under the gates (and the
    output of ``post`` when given), the forward stopped there: list of (args, post_out, mask)."""
    out = []
    for batch in batches:
        box = {}

        def pre(mod, args, box=box):
            box["args"] = tuple(a.detach() for a in args)
            if post is None:
                raise _Stop

        def after(mod, args, output, box=box):
            box["post"] = output.detach()
            raise _Stop

        handles = [module.register_forward_pre_hook(pre)]
        if post is not None:
            handles.append(post.register_forward_hook(after))
        try:
            with gated(model, head_gates, neuron_gates):
                model(**batch)
        except _Stop:
            pass
        finally:
            for h in handles:
                h.remove()
        out.append((box["args"], box.get("post"), batch["attention_mask"].bool()))
    return out


@torch.no_grad()
def _teacher_targets(model, layer, kind, head_gates, neuron_gates, batches):
    """The teacher's pre-LayerNorm output of one sub-layer per batch, [B, T, hidden], as the
    official code computes it: ``mha``: dense(context under the teacher's head gates) +
    residual; ``ffn``: dense(every neuron's activation) + residual, on the teacher's input
    (the official hook captures the activations before the teacher's neuron mask applies)."""
    if kind == "mha":
        module = layer.attention.output
        captured = _capture(model, module, head_gates, neuron_gates, batches, post=module.dense)
        return [post + args[1] for args, post, _ in captured]
    captured = _capture(model, layer.output, head_gates, neuron_gates, batches)
    return [layer.output.dense(args[0]) + args[1] for args, _, _ in captured]


def mha_system(layer, captured, targets, kept: np.ndarray):
    """A^T A, A^T b, b^T b of the attention block of one layer (float64): columns are the
    kept heads' contributions y_h = context_h W_o[:, h]^T (flattened over tokens and hidden
    units) and an intercept; b = teacher output - output bias - residual. Padding tokens
    are left out."""
    dense = layer.attention.output.dense
    d = layer.attention.self.attention_head_size
    heads = np.flatnonzero(kept)
    k = len(heads) + 1
    ata = torch.zeros(k, k, dtype=torch.float64)
    atb = torch.zeros(k, dtype=torch.float64)
    btb = torch.zeros((), dtype=torch.float64)
    W = dense.weight.detach().double()  # [hidden, H*d]
    for (args, _, mask), target in zip(captured, targets):
        context, residual = args[0][mask].double(), args[1][mask].double()  # [T, H*d], [T, hidden]
        b = target[mask].double() - dense.bias.detach().double() - residual
        ys = [context[:, h * d : (h + 1) * d] @ W[:, h * d : (h + 1) * d].t() for h in heads]  # each [T, hidden]
        Y = torch.stack(ys + [torch.ones_like(b)], 0).reshape(k, -1).cpu()  # [k, T*hidden]
        bv = b.reshape(-1).cpu()
        ata += Y @ Y.t()
        atb += Y @ bv
        btb += bv @ bv
    return ata, atb, btb


def ffn_system(layer, captured, targets, kept: np.ndarray, *, cls_only: bool = False):
    """A^T A, A^T b, b^T b of the feed-forward block of one layer (float64), in the official
    Hadamard form: A^T A = (W2_k^T W2_k) * (a_k^T a_k), A^T b = sum_t a_j(t) (w_j . b_t), with
    a the kept neurons' activations and b = teacher output - output bias - residual.
    ``cls_only``: only the [CLS] rows (the official code's last layer of a classifier)."""
    dense = layer.output.dense
    neurons = torch.as_tensor(np.flatnonzero(kept), dtype=torch.long)
    W = dense.weight.detach().double()[:, neurons.to(dense.weight.device)]  # [hidden, k]
    k = len(neurons)
    ata = torch.zeros(k, k, dtype=torch.float64)
    atb = torch.zeros(k, dtype=torch.float64)
    btb = torch.zeros((), dtype=torch.float64)
    WtW = (W.t() @ W).cpu()
    for (args, _, mask), target in zip(captured, targets):
        if cls_only:
            mask = torch.zeros_like(mask)
            mask[:, 0] = True
        act = args[0][mask].double()[:, neurons.to(args[0].device)]  # [T, k]
        b = target[mask].double() - dense.bias.detach().double() - args[1][mask].double()  # [T, hidden]
        ata += WtW * (act.t() @ act).cpu()
        atb += (act * (b @ W)).sum(0).cpu()
        btb += b.pow(2).sum().cpu()
    return ata, atb, btb


def residual(ata, atb, btb, x) -> float:
    """|A x - b|^2 from the accumulated A^T A, A^T b and b^T b."""
    x = x.double()
    return float(x @ ata @ x - 2 * x @ atb + btb)


@torch.no_grad()
def tune_masks(
    model,
    batches,
    head_keep: np.ndarray,
    neuron_keep: np.ndarray,
    teacher_heads: np.ndarray,
    teacher_neurons: np.ndarray,
    *,
    damp: float,
    cls_last: bool = True,
    solver: str = "lsmr",
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """The official ``rescale_mask``: layer by layer, scales of the student's kept heads (not
    in layer 0), then of its kept neurons, fitted so that each sub-layer's pre-LayerNorm
    output matches the teacher's on ``batches``; the student's inputs include the scales
    already tuned upstream. A failed solve (not finite) or a scale outside [-10, 10] stops
    tuning for this and every later layer. Returns head scales [L, H], neuron scales [L, F]
    (0 where pruned) and a per-layer log with the residual before and after."""
    device = next(model.parameters()).device
    head_scale = torch.as_tensor(head_keep, dtype=torch.float32, device=device).clone()
    neuron_scale = torch.as_tensor(neuron_keep, dtype=torch.float32, device=device).clone()
    t_heads = torch.as_tensor(teacher_heads, dtype=torch.float32, device=device)
    t_neurons = torch.as_tensor(teacher_neurons, dtype=torch.float32, device=device)
    layers = layers_of(model)
    report = []
    stopped = False
    for i, layer in enumerate(layers):
        entry = {"layer": i}
        teacher_empty = not teacher_heads[i].any() and not teacher_neurons[i].any()
        for kind in ("mha", "ffn"):
            kept = head_keep[i] if kind == "mha" else neuron_keep[i]
            if stopped or teacher_empty or not kept.any() or (kind == "mha" and i == 0):
                continue
            module = layer.attention.output if kind == "mha" else layer.output
            targets = _teacher_targets(model, layer, kind, t_heads, t_neurons, batches)
            captured = _capture(model, module, head_scale, neuron_scale, batches)
            if kind == "mha":
                ata, atb, btb = mha_system(layer, captured, targets, kept)
            else:
                ata, atb, btb = ffn_system(layer, captured, targets, kept, cls_only=cls_last and i == len(layers) - 1)
            x = (solve_scales_lsmr if solver == "lsmr" else solve_scales)(ata, atb, damp)
            units = int(kept.sum())
            scales = x[:units]  # the intercept (heads) is dropped, as the official code
            ok = bool(torch.isfinite(x).all()) and float(scales.abs().max()) <= SCALE_BOUND
            # the layer's reconstruction error as the model uses it: scales 1 before, the
            # fitted scales after, the intercept (heads) at 0 in both
            applied = torch.zeros_like(x)
            applied[:units] = 1.0
            before = residual(ata, atb, btb, applied)
            applied[:units] = scales
            entry[kind] = {
                "units": units,
                "ok": ok,
                "residual_before": before,
                "residual_after": residual(ata, atb, btb, applied) if ok else None,
                "scale_min": float(scales.min()) if ok else None,
                "scale_max": float(scales.max()) if ok else None,
            }
            if not ok:
                stopped = True
                continue
            scales = scales.float().to(device)
            target = head_scale if kind == "mha" else neuron_scale
            target[i, torch.as_tensor(np.flatnonzero(kept), device=device)] = scales
        report.append(entry)
    return head_scale.cpu().numpy(), neuron_scale.cpu().numpy(), report


# --------------------------------------------------------------------------- the methods


def _effective_neurons(head_keep: np.ndarray, neuron_keep: np.ndarray | None, F: int) -> np.ndarray:
    """The neuron mask a result means: its own, or (heads only) every neuron of a layer that
    keeps a head and none of a layer that goes."""
    if neuron_keep is not None:
        return neuron_keep
    return np.repeat(head_keep.any(1, keepdims=True), F, axis=1)


def _valid_metrics(model, tokenizer, task: PruneTask, head_gates=None, neuron_gates=None) -> dict:
    cfg = task.train_cfg
    if head_gates is None:
        m = evaluate(model, tokenizer, task.valid_texts, task.valid_labels, max_length=cfg.max_length, dtype="float32")
    else:
        device = next(model.parameters()).device
        hg = torch.as_tensor(head_gates, dtype=torch.float32, device=device)
        ng = torch.as_tensor(neuron_gates, dtype=torch.float32, device=device)
        with gated(model, hg, ng):
            m = evaluate(
                model, tokenizer, task.valid_texts, task.valid_labels, max_length=cfg.max_length, dtype="float32"
            )
    m.pop("predictions")
    return {k: float(v) for k, v in m.items()}


def _search(
    task: PruneTask,
    p: FisherParams,
    with_neurons: bool,
    hi: np.ndarray,
    ni: np.ndarray | None,
    costs: UnitCosts,
    keep_fraction: float,
):
    """Masks (heads, neurons or None) keeping ``keep_fraction`` of the heads (heads only) or
    of the encoder FLOPs, and the search's record."""
    if with_neurons:
        heads, neurons, info = search_flops(hi, ni, costs, costs.full_encoder * keep_fraction)
        return heads, neurons, info
    total = hi.size
    n_keep = max(1, int(round(keep_fraction * total)))
    return top_keep(hi, n_keep), None, {"heads": n_keep}


def task_gradients(
    task: PruneTask, *, neurons: bool, finetune: bool = True, per_sample: bool = True, batch_size: int = 32
):
    """Steps 0 and 1 on a task: the pretrained model, trained on the lottery sample
    (``finetune``), and its mask gradients on that sample (:func:`mask_gradients`).
    Returns ``(model, tokenizer, head_grads, neuron_grads, seconds)``; the model is in eval
    mode. ``ga_ffn`` (``init: fisher``, ``grouping: fisher``) shares this with ``fisher``."""
    times = {}
    t0 = time.perf_counter()
    model = load_classifier(
        task.model_dir, seed=task.train_cfg.seed, attn_implementation=attention_for_training(task.device)
    )
    model.to(task.device)
    tokenizer = load_tokenizer(task.model_dir)
    if finetune:
        task.train_on_sample(
            model,
            tokenizer,
            task.train_cfg,
            progress=task.progress,
            desc="fisher fine-tune",
        )
    model.eval()
    times["finetune"] = time.perf_counter() - t0

    t = time.perf_counter()
    hg, ng = mask_gradients(
        model,
        tokenizer,
        task.train_texts,
        task.train_labels,
        neurons=neurons,
        per_sample=per_sample,
        batch_size=batch_size,
        max_length=task.train_cfg.max_length,
    )
    times["fisher"] = time.perf_counter() - t
    return model, tokenizer, hg, ng, times


def fisher_prune(task: PruneTask, *, with_neurons: bool) -> PruneResult:
    p = FisherParams.from_section(task.params)
    model, tokenizer, hg, ng, times = task_gradients(
        task,
        neurons=with_neurons,
        finetune=p.finetune,
        per_sample=p.gradients == "per_sample",
        batch_size=p.batch_size,
    )
    config = model.config
    L, H, F = config.num_hidden_layers, config.num_attention_heads, config.intermediate_size
    costs = UnitCosts.of(config, p.seq_len)
    hi = fisher_information(hg)
    ni = fisher_information(ng) if with_neurons else None

    t = time.perf_counter()
    if with_neurons:
        keep_fraction = 1.0 - task.rate / 100.0
        unit = "flops"
    else:
        keep_fraction = 1.0 - n_pruned(L * H, task.rate) / (L * H)
        unit = "heads"
    heads, neurons, info = _search(task, p, with_neurons, hi, ni, costs, keep_fraction)
    times["search"] = time.perf_counter() - t

    t = time.perf_counter()
    heads, neurons, rearranged = rearrange_masks(heads, neurons, hg, ng, apply=p.rearrange)
    times["rearrange"] = time.perf_counter() - t
    eff = _effective_neurons(heads, neurons, F)

    t = time.perf_counter()
    extras = {}
    head_scale, neuron_scale, tuning = heads.astype(np.float32), eff.astype(np.float32), []
    if p.tune:
        if p.teacher == "sqrt":
            t_heads, t_neurons, _ = _search(task, p, with_neurons, hi, ni, costs, math.sqrt(keep_fraction))
            t_eff = _effective_neurons(t_heads, t_neurons, F)
        else:
            t_heads, t_eff = np.ones((L, H), dtype=bool), np.ones((L, F), dtype=bool)
        ids = encode(tokenizer, task.train_texts, task.train_cfg.max_length)
        batches = [
            collate(tokenizer, ids, idx, task.device)
            for idx in length_sorted_batches([len(x) for x in ids], p.batch_size)
        ]
        head_scale, neuron_scale, tuning = tune_masks(
            model, batches, heads, eff, t_heads, t_eff, damp=p.damp, solver=p.solver
        )
        extras["teacher"] = {
            "kind": p.teacher,
            "heads": int(t_heads.sum()),
            "neurons": int(t_eff.sum()),
            "flops_removed_percent": costs.removed_percent(t_heads, t_eff),
        }
    times["tune"] = time.perf_counter() - t

    t = time.perf_counter()
    extras["retraining_free"] = {
        "metric": task.metric,
        "unpruned": _valid_metrics(model, tokenizer, task),
        "binary": _valid_metrics(model, tokenizer, task, heads, eff),
        **({"tuned": _valid_metrics(model, tokenizer, task, head_scale, neuron_scale)} if p.tune else {}),
    }
    times["evaluate"] = time.perf_counter() - t
    times["search_total"] = sum(v for k, v in times.items() if k != "evaluate")

    kept, full = costs.encoder(heads, neurons), costs.full_encoder
    log.info(
        "fisher%s at %s%%: %d heads, %s neurons, %.1f%% FLOPs removed; retraining-free valid %s: unpruned %.4f, "
        "binary %.4f%s; %.1f s",
        "" if with_neurons else "_heads",
        task.rate,
        int(heads.sum()),
        int(eff.sum()),
        100 * (1 - kept / full),
        task.metric,
        extras["retraining_free"]["unpruned"][task.metric],
        extras["retraining_free"]["binary"][task.metric],
        f", tuned {extras['retraining_free']['tuned'][task.metric]:.4f}" if p.tune else "",
        times["search_total"],
    )
    extras.update(
        {
            "params": asdict(p),
            "head_fisher": hi.tolist(),
            "neuron_fisher_per_layer": ni.sum(1).tolist() if with_neurons else None,
            "search": info,
            "rearrangement": rearranged,
            "tuning": tuning,
            "head_scale": np.asarray(head_scale).tolist(),
            "neuron_scale_per_layer": [
                {"mean": float(row[k].mean()), "min": float(row[k].min()), "max": float(row[k].max())}
                if k.any()
                else None
                for row, k in zip(np.asarray(neuron_scale), eff)
            ],
            "flops_removed_percent": 100 * (1 - kept / full),
            "seq_len": p.seq_len,
            "seconds": times,
            "samples": len(task.train_texts),
        }
    )
    return PruneResult(
        head_keep=heads, unit=unit, neuron_keep=neurons, flops=(kept, full) if with_neurons else None, extras=extras
    )


def run(task: PruneTask) -> PruneResult:
    """``fisher``: heads and feed-forward neurons under a FLOPs budget (rate = percent of the
    encoder's forward FLOPs removed at ``prune.fisher.seq_len``)."""
    return fisher_prune(task, with_neurons=True)


def run_heads(task: PruneTask) -> PruneResult:
    """``fisher_heads``: heads only, the GA's rate (percent of heads pruned)."""
    return fisher_prune(task, with_neurons=False)
