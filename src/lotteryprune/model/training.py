"""Seeded fine-tuning and evaluation of sequence classifiers.

AdamW with linear warm-up and decay, dynamic padding, length-grouped batches, gradient
clipping, and optional weight masks held at zero through training. On CPU, two runs with
one seed give identical weights. On CUDA, training runs under bf16 autocast.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, fields
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..metrics import classification_metrics
from .batching import collate, encode, grouped_batches
from .heads import apply_weight_masks


@dataclass
class TrainConfig:
    epochs: float = 3
    lr: float = 1e-4
    batch_size: int = 16
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    max_length: int = 64
    seed: int = 0

    @classmethod
    def from_dict(cls, d: dict, **overrides) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise KeyError(f"unknown training keys: {sorted(unknown)}")
        return cls(**{**d, **overrides})

    def to_dict(self) -> dict:
        return asdict(self)


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


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
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    ids = encode(tokenizer, texts, cfg.max_length)
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    full_epochs = int(math.floor(cfg.epochs))
    epoch_batches = [grouped_batches([len(x) for x in ids], cfg.batch_size, rng) for _ in range(max(1, math.ceil(cfg.epochs)))]
    schedule = [b for e in range(full_epochs) for b in epoch_batches[e]]
    if cfg.epochs > full_epochs:  # a fractional epoch: the first part of one more shuffle
        part = epoch_batches[full_epochs] if full_epochs < len(epoch_batches) else epoch_batches[-1]
        schedule += part[: int(round((cfg.epochs - full_epochs) * len(part)))]
    total = len(schedule)
    no_decay = ("bias", "LayerNorm.weight", "layer_norm", "norm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)], "weight_decay": cfg.weight_decay},
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
    warmup = int(round(cfg.warmup_ratio * total))

    def lr_lambda(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
    apply_weight_masks(model, weight_masks)
    model.train()
    start = time.perf_counter()
    samples, loss_ema = 0, None
    bar = tqdm(schedule, desc=desc, disable=not progress, mininterval=5)
    for step, idx in enumerate(bar):
        batch = collate(tokenizer, ids, idx, device)
        with _autocast(device):
            logits = model(**batch).logits
        loss = torch.nn.functional.cross_entropy(logits.float(), y[idx].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if on_backward is not None:
            on_backward(step, total)
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        apply_weight_masks(model, weight_masks)
        samples += len(idx)
        loss_ema = loss.item() if loss_ema is None else 0.9 * loss_ema + 0.1 * loss.item()
        bar.set_postfix(loss=f"{loss_ema:.3f}", refresh=False)
    seconds = time.perf_counter() - start
    model.eval()
    return {"steps": total, "samples": samples, "seconds": seconds, "samples_per_s": samples / max(seconds, 1e-9), "loss": loss_ema}


@torch.no_grad()
def predict_logits(model, tokenizer, texts: Sequence[str], *, batch_size: int = 128, max_length: int = 64, progress: bool = False) -> np.ndarray:
    device = next(model.parameters()).device
    model.eval()
    ids = encode(tokenizer, texts, max_length)
    out = np.zeros((len(ids), model.config.num_labels), dtype=np.float32)
    for idx in tqdm(grouped_batches([len(x) for x in ids], batch_size, None), desc="predict", disable=not progress, mininterval=5):
        with _autocast(device):
            out[idx] = model(**collate(tokenizer, ids, idx, device)).logits.float().cpu().numpy()
    return out


def evaluate(model, tokenizer, texts: Sequence[str], labels: Sequence[int], *, batch_size: int = 128, max_length: int = 64, progress: bool = False) -> dict:
    """Accuracy, F1 of the positive class, macro-F1 and MCC."""
    logits = predict_logits(model, tokenizer, texts, batch_size=batch_size, max_length=max_length, progress=progress)
    return classification_metrics(labels, logits.argmax(1))
