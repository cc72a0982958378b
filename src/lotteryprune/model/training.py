"""Seeded fine-tuning and evaluation of sequence classifiers.

AdamW (fused) with linear warm-up and decay, dynamic padding, length-grouped batches,
gradient clipping, and optional weight masks held at zero through training. Precision is
``TrainConfig.dtype``: ``float32``, ``bfloat16`` (autocast: matrix products in bf16,
weights, optimiser state and the loss in fp32) or ``auto`` (bf16 where the hardware
multiplies it natively: recent GPUs, CPUs with AMX or AVX512-BF16). On CPU, two runs with
one seed give identical weights, in either precision.

Only the rows of the word-embedding matrix that the training texts use are handed to the
optimiser (:class:`_TrainedRows`): MiniLM's matrix is 11.7M of its 22.7M parameters, and a
batch reads a few hundred of its 30,522 rows, yet dense AdamW, gradient clipping and the
zeroed gradient each walk all of it every step. A row no text uses has a zero gradient at
every step, so AdamW only decays it (its moments stay 0); that decay is applied when
training ends. The weights are dense AdamW's (bit-identical on MiniLM), and a step is
10-20% faster on CPU (``benchmarks/speed.py --part train``).

On CPU the model is trained with eager attention (:func:`attention_for_training`): torch's
CPU kernel for the backward pass of fused attention was 45% of a bf16 training step on
MiniLM; eager attention gives the same numbers for a third of that step's time.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from tqdm.auto import tqdm

from ..metrics import classification_metrics
from .batching import collate, encode, grouped_batches
from .device import inference_dtype
from .heads import apply_weight_masks


@dataclass
class TrainConfig:
    """One training recipe. Built from a config section (``prune.train``, ``finetune.train``,
    ``finetune.augment``) by :meth:`from_section`; no field has a default of its own."""

    epochs: float
    lr: float
    batch_size: int
    warmup_ratio: float
    weight_decay: float
    max_grad_norm: float
    max_length: int  # model.max_length
    seed: int
    dtype: str  # the config's top-level `dtype`: float32 | bfloat16 | auto

    @classmethod
    def from_section(cls, section: dict, *, name: str = "train", **job) -> TrainConfig:
        """The recipe of config section ``name`` plus the job's own fields (seed, max_length,
        dtype). A missing or unknown key is named."""
        names = [f.name for f in fields(cls)]
        values = {**section, **job}
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise KeyError(f"config {name}: unknown keys {unknown}")
        missing = [n for n in names if n not in values]
        if missing:
            raise KeyError(f"config {name}: missing keys {missing}")
        return cls(**{n: values[n] for n in names})

    def to_dict(self) -> dict:
        return asdict(self)


def attention_for_training(device) -> str:
    """``eager`` on CPU (see the module docstring), ``sdpa`` on GPUs."""
    return "sdpa" if torch.device(device).type == "cuda" else "eager"


def _autocast(device: torch.device, dtype: torch.dtype):
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


class _TrainedRows(torch.nn.Module):
    """Stands in for a word-embedding layer while it trains: the rows ``rows`` of ``embedding``
    are the parameter ``weight`` (same name, so same weight-decay group), looked up through a
    vocabulary-sized index. Any id outside ``rows`` is an error (all were seen in advance)."""

    def __init__(self, embedding: torch.nn.Embedding, rows: torch.Tensor):
        super().__init__()
        self.embedding = [embedding]  # a list: not a submodule, so its full matrix is not a parameter
        self.rows = rows
        self.weight = torch.nn.Parameter(embedding.weight.detach()[rows].clone())
        index = torch.full((embedding.num_embeddings,), -1, dtype=torch.long, device=rows.device)
        index[rows] = torch.arange(len(rows), device=rows.device)
        self.register_buffer("index", index, persistent=False)
        pad = embedding.padding_idx
        self.padding_idx = None if pad is None else int(index[pad])

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.embedding(self.index[input_ids], self.weight, padding_idx=self.padding_idx)

    @torch.no_grad()
    def restore(self, decay: Sequence[float]) -> torch.nn.Embedding:
        """Write the trained rows back, decay every other row as AdamW did (one factor
        ``1 - lr * weight_decay`` per step, in order), and return the embedding layer."""
        embedding = self.embedding[0]
        full = embedding.weight
        untouched = torch.ones(full.shape[0], dtype=torch.bool, device=full.device)
        untouched[self.rows] = False
        rest = full[untouched]
        for factor in decay:
            rest.mul_(factor)
        full[untouched] = rest
        full[self.rows] = self.weight.detach()
        return embedding


def _row_subset(model, ids: Sequence[list[int]], tokenizer, weight_masks, on_backward) -> _TrainedRows | None:
    """The stand-in for ``model``'s word embeddings, or None where it does not apply: a hook
    reads every gradient (SEVEN), a weight mask may cover the matrix, it is frozen, or it
    renormalises, scales or sparsifies its gradient."""
    embedding = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if (
        on_backward is not None
        or weight_masks
        or not isinstance(embedding, torch.nn.Embedding)
        or not embedding.weight.requires_grad
        or embedding.max_norm is not None  # options the row lookup does not reproduce
        or embedding.scale_grad_by_freq
        or embedding.sparse
    ):
        return None
    used = {i for x in ids for i in x}
    for special in (tokenizer.pad_token_id, embedding.padding_idx):
        if special is not None:
            used.add(int(special))
    rows = torch.as_tensor(sorted(used), dtype=torch.long, device=embedding.weight.device)
    return _TrainedRows(embedding, rows)


def train(
    model,
    tokenizer,
    texts: Sequence[str],
    labels: Sequence[int],
    cfg: TrainConfig,
    *,
    weight_masks: dict[str, torch.Tensor] | None = None,
    on_backward: Callable[[int, int], None] | None = None,
    progress: bool = True,
    desc: str = "train",
) -> dict:
    """Fine-tune ``model`` in place. Returns steps, samples, seconds and samples/s.

    ``on_backward(step, total_steps)`` runs after each backward pass, before clipping and
    the optimiser step (SEVEN reads the gradients there, and may change ``weight_masks``).
    """
    device = next(model.parameters()).device
    dtype = inference_dtype(cfg.dtype, device)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    ids = encode(tokenizer, texts, cfg.max_length)
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    full_epochs = int(math.floor(cfg.epochs))
    epoch_batches = [
        grouped_batches([len(x) for x in ids], cfg.batch_size, rng) for _ in range(max(1, math.ceil(cfg.epochs)))
    ]
    schedule = [b for e in range(full_epochs) for b in epoch_batches[e]]
    if cfg.epochs > full_epochs:  # a fractional epoch: the first part of one more shuffle
        part = epoch_batches[full_epochs] if full_epochs < len(epoch_batches) else epoch_batches[-1]
        schedule += part[: int(round((cfg.epochs - full_epochs) * len(part)))]
    subset = _row_subset(model, ids, tokenizer, weight_masks, on_backward)
    if subset is not None:
        model.set_input_embeddings(subset)
    decay = []  # on an error the model is whole again, its untouched rows undecayed
    try:
        result = _train_loop(
            model, tokenizer, ids, y, schedule, cfg, dtype, device, weight_masks, on_backward, progress, desc
        )
        decay = [1.0 - lr * cfg.weight_decay for lr in result.pop("decay_lrs")]
    finally:
        if subset is not None:
            model.set_input_embeddings(subset.restore(decay))
    return result


def _train_loop(model, tokenizer, ids, y, schedule, cfg, dtype, device, weight_masks, on_backward, progress, desc):
    total = len(schedule)
    no_decay = ("bias", "LayerNorm.weight", "layer_norm", "norm.weight")
    groups = [
        {
            "params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
            "weight_decay": cfg.weight_decay,
        },
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    # fused: one kernel for every parameter's update (4x faster than the per-tensor loop on
    # CPU for MiniLM, same numbers); needs floating-point parameters on CPU or CUDA.
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for g in groups for p in g["params"])
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, fused=fused)
    warmup = int(round(cfg.warmup_ratio * total))

    def lr_lambda(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
    apply_weight_masks(model, weight_masks)
    model.train()
    start = time.perf_counter()
    samples, loss_ema, decay_lrs = 0, None, []
    bar = tqdm(schedule, desc=desc, disable=not progress, mininterval=5)
    for step, idx in enumerate(bar):
        batch = collate(tokenizer, ids, idx, device)
        with _autocast(device, dtype):
            logits = model(**batch).logits
        loss = torch.nn.functional.cross_entropy(logits.float(), y[idx].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if on_backward is not None:
            on_backward(step, total)
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        decay_lrs.append(optimizer.param_groups[0]["lr"])  # the decayed group's rate at this step
        optimizer.step()
        scheduler.step()
        apply_weight_masks(model, weight_masks)
        samples += len(idx)
        loss_ema = loss.item() if loss_ema is None else 0.9 * loss_ema + 0.1 * loss.item()
        bar.set_postfix(loss=f"{loss_ema:.3f}", refresh=False)
    seconds = time.perf_counter() - start
    model.eval()
    return {
        "steps": total,
        "samples": samples,
        "seconds": seconds,
        "samples_per_s": samples / max(seconds, 1e-9),
        "loss": loss_ema,
        "dtype": str(dtype).removeprefix("torch."),
        "decay_lrs": decay_lrs,
    }


EVAL_BATCH_SIZE = 128  # texts per forward pass when predicting; no effect on the numbers


@torch.inference_mode()
def predict_logits(
    model, tokenizer, texts: Sequence[str], *, max_length: int, dtype: str, progress: bool = False
) -> np.ndarray:
    """Logits [n, labels] of every text, in input order (``dtype`` as in :class:`TrainConfig`)."""
    device = next(model.parameters()).device
    precision = inference_dtype(dtype, device)
    model.eval()
    ids = encode(tokenizer, texts, max_length)
    out = np.zeros((len(ids), model.config.num_labels), dtype=np.float32)
    for idx in tqdm(
        grouped_batches([len(x) for x in ids], EVAL_BATCH_SIZE, None),
        desc="predict",
        disable=not progress,
        mininterval=5,
    ):
        with _autocast(device, precision):
            out[idx] = model(**collate(tokenizer, ids, idx, device)).logits.float().cpu().numpy()
    return out


def evaluate(
    model,
    tokenizer,
    texts: Sequence[str],
    labels: Sequence[int],
    *,
    max_length: int,
    dtype: str,
    progress: bool = False,
) -> dict:
    """Accuracy, F1 of the positive class, macro-F1 and MCC, and the predictions."""
    logits = predict_logits(model, tokenizer, texts, max_length=max_length, dtype=dtype, progress=progress)
    pred = logits.argmax(1)
    return {**classification_metrics(labels, pred), "predictions": pred.astype(int).tolist()}
