"""Lottery sample selection: the few train rows every pruning search trains its masks on.

``random`` draws a seeded sample; ``kmeans`` embeds the train split with the pretrained
encoder, clusters it into K = (samples wanted) clusters and keeps the sample nearest each
centre (paper section 3.2: a diverse, representative sample). Both are label-blind; the
class balance of the pick is recorded, not enforced.
"""

from __future__ import annotations

import heapq
import re
import time
from collections.abc import Sequence

import numpy as np

from .config import format_rate
from .io import atomic_path, save_figure

SELECTORS = ("random", "kmeans")
SEL_PATTERN = r"(random|kmeans)-[0-9.]+"
# above this many (samples x clusters), full K-means is too slow: MiniBatchKMeans
FULL_KMEANS_LIMIT = 50_000_000
# entries of the centre x sample distance matrix computed at once (memory bound)
DISTANCE_BLOCK = 20_000_000


def sel_name(selector: str, rate: float | int | str) -> str:
    return f"{selector}-{format_rate(rate)}"


def parse_sel(sel: str) -> tuple[str, float]:
    """``"kmeans-0.5"`` -> ("kmeans", 0.5)."""
    if not re.fullmatch(SEL_PATTERN, sel):
        raise ValueError(f"lottery sample {sel!r}: expected <random|kmeans>-<percent>, e.g. random-5")
    selector, rate = sel.split("-", 1)
    return selector, float(rate)


def n_samples(rate: float, n_train: int) -> int:
    """Samples at ``rate`` percent of ``n_train``: at least 2, at most all."""
    if not 0 < rate <= 100:
        raise ValueError(f"selection rate is a percent in (0, 100], got {rate}")
    return min(n_train, max(2, int(round(rate / 100 * n_train))))


def select_random(n_total: int, n: int, seed: int) -> np.ndarray:
    """``n`` distinct row indices out of ``n_total``, seeded, in ascending order."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_total, size=min(n, n_total), replace=False))


def kmeans_centres(X: np.ndarray, k: int, seed: int, *, batch_size: int = 4096) -> np.ndarray:
    """K-means centres of the rows of ``X`` (MiniBatchKMeans when N x K is large)."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    n = len(X)
    if n * k <= FULL_KMEANS_LIMIT:
        model = KMeans(n_clusters=k, n_init=1 if k > 1000 else 3, random_state=seed)
    else:
        model = MiniBatchKMeans(n_clusters=k, batch_size=max(batch_size, 3 * k), n_init=1, random_state=seed)
    model.fit(X)
    return model.cluster_centers_.astype(np.float32)


def _nearest(X: np.ndarray, x_sq: np.ndarray, centres: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """For each centre, its ``k`` nearest rows of X (sorted) and their squared distances."""
    k = min(k, len(X))
    chunk = max(1, int(DISTANCE_BLOCK // len(X)))  # centres per block of the distance matrix
    idx = np.empty((len(centres), k), dtype=np.int64)
    dist = np.empty((len(centres), k), dtype=np.float64)
    for start in range(0, len(centres), chunk):
        c = centres[start : start + chunk]
        d = x_sq[None, :] - 2.0 * (c @ X.T) + (c * c).sum(1)[:, None]
        part = np.argpartition(d, k - 1, axis=1)[:, :k] if k < len(X) else np.tile(np.arange(len(X)), (len(c), 1))
        pd = np.take_along_axis(d, part, 1)
        order = np.lexsort((part, pd), axis=1)  # by distance, ties by row index
        idx[start : start + len(c)] = np.take_along_axis(part, order, 1)
        dist[start : start + len(c)] = np.take_along_axis(pd, order, 1)
    return idx, dist


def nearest_distinct(X: np.ndarray, centres: np.ndarray, *, k: int = 8) -> np.ndarray:
    """One distinct row of ``X`` per centre: its nearest row not taken by a closer claim.

    Claims are settled closest first over all (centre, row) pairs; a centre whose nearest
    row is taken moves on to its next nearest unused row.
    """
    X = np.asarray(X, dtype=np.float32)
    centres = np.asarray(centres, dtype=np.float32)
    if len(centres) > len(X):
        raise ValueError(f"{len(centres)} centres but only {len(X)} samples")
    x_sq = (X.astype(np.float64) ** 2).sum(1).astype(np.float32)
    idx, dist = _nearest(X, x_sq, centres, k)
    heap = [(dist[c, 0], int(idx[c, 0]), c, 0) for c in range(len(centres))]
    heapq.heapify(heap)
    chosen = np.full(len(centres), -1, dtype=np.int64)
    taken: set[int] = set()
    extra: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # centres that ran out of candidates
    while heap:
        d, row, c, rank = heapq.heappop(heap)
        if row not in taken:
            chosen[c] = row
            taken.add(row)
            continue
        rank += 1
        cand_idx, cand_dist = extra.get(c, (idx[c], dist[c]))
        if rank >= len(cand_idx):  # all k candidates taken: rank this centre against every row
            full_idx, full_dist = _nearest(X, x_sq, centres[c : c + 1], len(X))
            cand_idx, cand_dist = full_idx[0], full_dist[0]
            extra[c] = (cand_idx, cand_dist)
        heapq.heappush(heap, (cand_dist[rank], int(cand_idx[rank]), c, rank))
    return chosen


def select_kmeans(embeddings: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Row indices of the samples nearest the ``n`` K-means centres (distinct, ascending)."""
    if n >= len(embeddings):
        return np.arange(len(embeddings))
    centres = kmeans_centres(np.asarray(embeddings, dtype=np.float32), n, seed)
    return np.sort(nearest_distinct(embeddings, centres))


def select(
    selector: str,
    rate: float,
    ids: Sequence[str],
    labels: Sequence[int] | None,
    seed: int,
    embeddings: np.ndarray | None = None,
) -> dict:
    """The lottery sample of the train split (``ids`` in split order) as a JSON-ready record."""
    start = time.perf_counter()
    ids = [str(i) for i in ids]
    n = n_samples(rate, len(ids))
    if selector == "random":
        rows = select_random(len(ids), n, seed)
    elif selector == "kmeans":
        if embeddings is None:
            raise ValueError("kmeans selection needs the train embeddings")
        if len(embeddings) != len(ids):
            raise ValueError(f"{len(embeddings)} embeddings for {len(ids)} train ids")
        rows = select_kmeans(embeddings, n, seed)
    else:
        raise ValueError(f"unknown selector {selector!r}; known: {list(SELECTORS)}")
    record = {
        "selector": selector,
        "rate": float(rate),
        "n": int(len(rows)),
        "n_train": len(ids),
        "seed": int(seed),
        "ids": [ids[i] for i in rows],
    }
    if labels is not None:
        picked = np.asarray(labels)[rows]
        values, counts = np.unique(picked, return_counts=True)
        record["class_balance"] = {str(int(v)): int(c) for v, c in zip(values, counts)}
    record["seconds"] = time.perf_counter() - start
    return record


# --------------------------------------------------------------------------- embeddings and figure


def embed_train(
    model_dir: str, texts: Sequence[str], *, batch_size: int, max_length: int, device: str, progress: bool = True
) -> np.ndarray:
    """Embeddings of ``texts`` by the pretrained encoder (:func:`lotteryprune.embed.embed_texts`)."""
    import torch
    from transformers import AutoModel

    from .model.embed import embed_texts
    from .model.sources import load_tokenizer

    model = AutoModel.from_pretrained(str(model_dir)).to(torch.device(device))
    tokenizer = load_tokenizer(model_dir)
    return embed_texts(model, tokenizer, texts, batch_size=batch_size, max_length=max_length, progress=progress)


def umap_coords(embeddings: np.ndarray, *, n_neighbors: int, min_dist: float, seed: int) -> np.ndarray:
    """2-D UMAP map of the embeddings (cosine metric, seeded)."""
    import umap

    reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=min_dist, metric="cosine", random_state=seed)
    return reducer.fit_transform(embeddings).astype(np.float32)


def plot_selection(coords: np.ndarray, labels: Sequence[int], picks: dict[str, Sequence[int]], path) -> list[str]:
    """One panel per selection rate: all train samples (light, by true label) and each
    selector's picks marked. ``picks`` maps ``"<selector>-<rate>"`` to row indices.

    Writes ``path`` (PNG) and the same name with ``.pdf``; returns both paths.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    coords, labels = np.asarray(coords), np.asarray(labels)
    by_rate: dict[float, dict[str, Sequence[int]]] = {}
    for sel, rows in picks.items():
        selector, rate = parse_sel(sel)
        by_rate.setdefault(rate, {})[selector] = rows
    rates = sorted(by_rate, reverse=True)
    fig, axes = plt.subplots(1, max(1, len(rates)), figsize=(4.6 * max(1, len(rates)), 4.4), squeeze=False)
    markers = {
        "random": dict(marker="o", facecolors="none", edgecolors="black", linewidths=0.8),
        "kmeans": dict(marker="x", c="tab:red", linewidths=0.9),
    }
    for ax, rate in zip(axes[0], rates):
        for value, colour, name in [(0, "tab:blue", "negative"), (1, "tab:orange", "positive")]:
            sel = labels == value
            ax.scatter(coords[sel, 0], coords[sel, 1], s=3, c=colour, alpha=0.15, linewidths=0, label=f"{name} (all)")
        for selector in SELECTORS:
            if selector in by_rate[rate]:
                rows = np.asarray(by_rate[rate][selector], dtype=int)
                ax.scatter(
                    coords[rows, 0], coords[rows, 1], s=16, label=f"{selector} ({len(rows)})", **markers[selector]
                )
        ax.set_title(f"lottery sample {format_rate(rate)}% of train")
        ax.set_xlabel("UMAP 1")
        ax.set_ylabel("UMAP 2")
        ax.legend(loc="best", fontsize=7, markerscale=1.5)
    fig.tight_layout()
    return save_figure(fig, path)


# --------------------------------------------------------------------------- files (for the scripts)


def train_rows(split_df):
    """The train rows of the split table, in split order, ids as str."""
    train = split_df[split_df["split"] == "train"].reset_index(drop=True)
    if len(train) == 0:
        raise ValueError("split table has no train rows")
    return train.assign(id=train["id"].astype(str))


def write_embeddings(path, ids: Sequence[str], embeddings: np.ndarray) -> None:
    """One .npz: ``ids`` (str) and ``embeddings`` (float32 [N, hidden]), written atomically."""
    if len(ids) != len(embeddings):
        raise ValueError(f"{len(ids)} ids for {len(embeddings)} embeddings")
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, ids=np.asarray([str(i) for i in ids]), embeddings=np.asarray(embeddings, dtype=np.float32))


def read_embeddings(path) -> tuple[list[str], np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return data["ids"].tolist(), data["embeddings"]


def aligned_embeddings(path, ids: Sequence[str]) -> np.ndarray:
    """The embeddings of ``ids``, in that order; stale or foreign embeddings are an error."""
    emb_ids, emb = read_embeddings(path)
    if list(emb_ids) == list(ids):
        return emb
    pos = {i: k for k, i in enumerate(emb_ids)}
    missing = [i for i in ids if i not in pos]
    if missing:
        raise KeyError(f"{path}: no embedding for train ids {missing[:5]} ({len(missing)} in all); re-run rule embed")
    return emb[[pos[i] for i in ids]]


def selection_figure(
    embeddings: np.ndarray,
    ids: Sequence[str],
    labels: Sequence[int],
    records: Sequence[dict],
    path,
    *,
    n_neighbors: int,
    min_dist: float,
    seed: int,
) -> list[str]:
    """UMAP of the train embeddings with every selection record's picks marked (by rate)."""
    pos = {str(i): k for k, i in enumerate(ids)}
    picks = {}
    for rec in records:
        missing = [i for i in rec["ids"] if i not in pos]
        if missing:
            raise KeyError(
                f"selection {rec['selector']}-{format_rate(rec['rate'])}: ids not in the train split: {missing[:5]}"
            )
        picks[sel_name(rec["selector"], rec["rate"])] = [pos[i] for i in rec["ids"]]
    coords = umap_coords(embeddings, n_neighbors=n_neighbors, min_dist=min_dist, seed=seed)
    return plot_selection(coords, labels, picks, path)
