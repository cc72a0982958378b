"""Tokenise once, batch by length, pad per batch: the one way every stage feeds a model.

Texts of similar length share a batch, so short tweets are not padded to the longest text
of the data set. Evaluation orders batches longest first (a memory error shows at once);
training shuffles within mega-batches of similar length, then shuffles the batches.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def encode(tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids of every text (special tokens included), truncated to ``max_length``."""
    return tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]


def length_order(lengths: Sequence[int]) -> np.ndarray:
    """Indices longest first (stable), so neighbours have similar lengths."""
    return np.argsort(-np.asarray(lengths), kind="stable")


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Indices grouped into batches of similar length, longest first (deterministic)."""
    order = length_order(lengths)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def grouped_batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Length-grouped batches: shuffle, sort within mega-batches of 50 batches, shuffle batches.

    With ``rng=None`` the order is deterministic by length (:func:`length_sorted_batches`).
    """
    if rng is None:
        return length_sorted_batches(lengths, batch_size)
    n = len(lengths)
    lengths = np.asarray(lengths)
    order = rng.permutation(n)
    mega = batch_size * 50
    batches = []
    for start in range(0, n, mega):
        chunk = order[start : start + mega]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def collate(tokenizer, ids: Sequence[list[int]], idx: Sequence[int], device) -> dict[str, torch.Tensor]:
    """The padded batch of the texts ``idx`` (``input_ids``, ``attention_mask``, ...) on ``device``."""
    batch = tokenizer.pad({"input_ids": [ids[int(i)] for i in idx]}, return_tensors="pt")
    return {k: v.to(device) for k, v in batch.items()}
