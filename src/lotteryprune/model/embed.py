"""Sentence embeddings from an encoder: mean-pooled last hidden states, L2-normalised.

Used by the similarity 0-shot scorer and by K-means lottery sample selection. Texts are
sorted by length and padded per batch, so short tweets cost little.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .batching import collate, encode, length_sorted_batches


def mean_pooled(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the hidden states over the non-padding tokens: [B, T, D] -> [B, D]."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


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
    ids = encode(tokenizer, texts, max_length)
    out = np.zeros((len(texts), encoder.config.hidden_size), dtype=np.float32)
    batches = length_sorted_batches([len(x) for x in ids], batch_size)
    for idx in tqdm(batches, desc=desc, disable=not progress, mininterval=5):
        batch = collate(tokenizer, ids, idx, device)
        hidden = encoder(**batch).last_hidden_state.float()  # pool in fp32 whatever the model's dtype
        pooled = torch.nn.functional.normalize(mean_pooled(hidden, batch["attention_mask"]), dim=-1)
        out[idx] = pooled.cpu().numpy()
    return out
