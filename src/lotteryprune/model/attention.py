"""Attention maps of every head, and the per-head statistics computed from them.

Shared by the attention-based head-importance baselines (``entropy``, ``sep``) and by
MCAP (whose CNN reads the maps as images). Attention probabilities are only returned by
the eager attention implementation: load the model with
``model.sources.load_classifier(dir, attn_implementation="eager")``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .batching import collate, encode, length_sorted_batches


def pick_subset(n: int, limit: int | None, seed: int) -> np.ndarray:
    """Indices of at most ``limit`` of ``n`` items: all of them in order, or a seeded subset."""
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


@torch.no_grad()
def attention_batches(
    model,
    tokenizer,
    texts: Sequence[str],
    *,
    batch_size: int = 16,
    max_length: int = 64,
    max_batches: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> Iterator[dict]:
    """Yield, per batch: ``attentions`` [layers, B, heads, T, T], ``attention_mask`` [B, T],
    ``input_ids`` [B, T] and ``hidden`` (last hidden state [B, T, D]).

    With ``max_batches``, a seeded subset of ``max_batches * batch_size`` texts is used, so
    the cap does not favour the longest (or the first) texts.
    """
    encoder = getattr(model, "base_model", model)
    encoder.eval()
    device = next(encoder.parameters()).device
    texts = list(texts)
    keep = pick_subset(len(texts), None if max_batches is None else max_batches * batch_size, seed)
    ids = encode(tokenizer, [texts[i] for i in keep], max_length)
    for idx in tqdm(
        length_sorted_batches([len(x) for x in ids], batch_size), desc="attention", disable=not progress, mininterval=5
    ):
        batch = collate(tokenizer, ids, idx, device)
        out = encoder(**batch, output_attentions=True)
        if out.attentions is None or any(a is None for a in out.attentions):
            raise RuntimeError("the model returned no attention maps; load it with attn_implementation='eager'")
        yield {
            "attentions": torch.stack([a.float() for a in out.attentions]),
            "attention_mask": batch["attention_mask"],
            "input_ids": batch["input_ids"],
            "hidden": out.last_hidden_state,
        }


def head_entropy_sums(attentions: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Sum over valid query tokens of each head's attention entropy (nats), and the token count.

    ``attentions`` [layers, B, heads, T, T] (rows are distributions over keys; padded keys
    carry ~0 probability). Returns ([layers, heads], number of valid query tokens).
    """
    p = attentions.clamp_min(1e-12)
    entropy = -(attentions * p.log()).sum(-1)  # [L, B, H, T]
    q = attention_mask.to(entropy.dtype)[None, :, None, :]  # valid queries
    return (entropy * q).sum((1, 3)), float(attention_mask.sum())


def head_token_attention_sums(
    attentions: torch.Tensor, attention_mask: torch.Tensor, input_ids: torch.Tensor, token_id: int
) -> tuple[torch.Tensor, float]:
    """Sum over valid query tokens of the attention each head pays to ``token_id`` keys.

    Returns ([layers, heads], number of valid query tokens); divide for the mean.
    """
    to_token = (attentions * (input_ids == token_id).to(attentions.dtype)[None, :, None, None, :]).sum(
        -1
    )  # [L, B, H, T]
    q = attention_mask.to(to_token.dtype)[None, :, None, :]
    return (to_token * q).sum((1, 3)), float(attention_mask.sum())


def fit_maps(attentions: torch.Tensor, size: int) -> torch.Tensor:
    """Crop or zero-pad the two token axes of attention maps to ``size`` x ``size``."""
    t = attentions.shape[-1]
    if t >= size:
        return attentions[..., :size, :size]
    pad = size - t
    return torch.nn.functional.pad(attentions, (0, pad, 0, pad))
