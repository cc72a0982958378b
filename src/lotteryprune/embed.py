"""Sentence embeddings from an encoder: mean-pooled last hidden states, L2-normalised.

Used by the similarity 0-shot scorer and by K-means lottery sample selection. Texts are
sorted by length and padded per batch, so short tweets cost little.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Indices grouped into batches of similar length (longest first, for early OOM)."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


@torch.no_grad()
def embed_texts(
    model,
    tokenizer,
    texts: Sequence[str],
    *,
    batch_size: int = 128,
    max_length: int = 64,
    progress: bool = True,
    desc: str = "embed",
) -> np.ndarray:
    """Return float32 array [len(texts), hidden], rows L2-normalised, in input order.

    ``model`` is any transformers encoder (``AutoModel``) or a ``*ForSequenceClassification``
    wrapper (its base encoder is used).
    """
    encoder = getattr(model, "base_model", model)
    encoder.eval()
    device = next(encoder.parameters()).device
    texts = list(texts)
    enc = tokenizer(texts, truncation=True, max_length=max_length)
    ids = enc["input_ids"]
    out = np.zeros((len(texts), encoder.config.hidden_size), dtype=np.float32)
    batches = length_sorted_batches([len(x) for x in ids], batch_size)
    for idx in tqdm(batches, desc=desc, disable=not progress, mininterval=5):
        batch = tokenizer.pad({"input_ids": [ids[i] for i in idx]}, return_tensors="pt")
        batch = {k: v.to(device) for k, v in batch.items()}
        hidden = encoder(**batch).last_hidden_state.float()  # pool in fp32 whatever the model's dtype
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        pooled = torch.nn.functional.normalize(pooled, dim=-1)
        out[idx] = pooled.cpu().numpy()
    return out
