"""Figures 7 and 8 of the paper, from the fine-tuning and benchmark results."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from .io import atomic_path  # noqa: E402


def save(fig, path: str | Path) -> None:
    """PNG at ``path`` and a PDF beside it, each written atomically."""
    path = Path(path)
    for target in (path, path.with_suffix(".pdf")):
        with atomic_path(target, suffix=target.suffix) as tmp:
            fig.savefig(tmp, dpi=150, bbox_inches="tight", format=target.suffix[1:])
    plt.close(fig)


def figure7(agg: pd.DataFrame, reference_f1: float, path: str | Path) -> None:
    """Test F1 vs prune rate, one line per method and augmentation; unpruned F1 dashed."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for (method, aug), group in agg.groupby(["method", "augmentation"], sort=True):
        group = group.sort_values("rate")
        style = "-" if method == "ga" else ":"
        width = 2.2 if method == "ga" else 1.2
        ax.errorbar(
            group["rate"], group["test_f1"], yerr=group["test_f1_ci95"].fillna(0),
            label=f"{method}" + ("" if aug == "none" else f" + {aug}"), linestyle=style, linewidth=width, marker="o", markersize=3, capsize=2,
        )
    ax.axhline(reference_f1, color="black", linestyle="--", linewidth=1.2, label="unpruned")
    ax.set_xlabel("heads pruned (%)  [weights for seven]")
    ax.set_ylabel("test F1 (positive class)")
    ax.set_title("Figure 7: test F1 vs prune rate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    save(fig, path)


def figure8(agg: pd.DataFrame, bench: pd.DataFrame, path: str | Path) -> None:
    """Training time (final fine-tuning) and inference latency vs prune rate."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for method, group in agg.groupby("method", sort=True):
        group = group.sort_values("rate")
        left.plot(group["rate"], group["train_seconds"] / 60, marker="o", markersize=3, label=method)
    left.set_xlabel("prune rate (%)")
    left.set_ylabel("fine-tuning time (min)")
    left.set_title("training time")
    for method, group in bench.groupby("method", sort=True):
        group = group.sort_values("rate")
        right.plot(group["rate"], group["pruned_ms"], marker="o", markersize=3, label=method)
    if not bench.empty:
        right.axhline(bench["unpruned_ms"].median(), color="black", linestyle="--", linewidth=1.2, label="unpruned")
    right.set_xlabel("prune rate (%)")
    right.set_ylabel("inference latency per batch (ms)")
    right.set_title("inference time (same batch size)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Figure 8: training and inference time vs prune rate")
    save(fig, path)
