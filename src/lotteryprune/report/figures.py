"""The paper's figures: 7 (F1 vs prune rate), 8 (time vs prune rate), 9 (kept-head grids)
and the GA's fitness curves. Each function takes data and an output path (PNG); the PDF is
written beside it.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..io import save_figure  # noqa: E402

KEPT = "#2e9e44"
PRUNED = "#f2f2f2"
DROPPED = "#b0b0b0"


def _rate_label(rate) -> str:
    value = float(rate)
    if value < 1:  # a fraction
        value *= 100
    return f"{value:g}%"


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
    save_figure(fig, path)


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
    save_figure(fig, path)


def plot_fitness_history(histories: dict, path) -> list[str]:
    """Best-ever, generation best and generation mean validation F1 per generation, one
    colour per prune rate. ``histories`` maps rate (percent or fraction) to the GA's history
    (list of dicts with ``generation``, ``best``, ``mean``, ``best_ever``)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    cmap = plt.get_cmap("viridis")
    rates = sorted(histories, key=float)
    for i, rate in enumerate(rates):
        hist = histories[rate]
        if not hist:
            continue
        colour = cmap(0.85 * i / max(1, len(rates) - 1))  # the top of viridis is too pale
        gen = [h["generation"] for h in hist]
        ax.plot(gen, [h["best_ever"] for h in hist], color=colour, lw=2, label=f"{_rate_label(rate)} pruned")
        ax.plot(gen, [h["mean"] for h in hist], color=colour, lw=1, ls=":", alpha=0.8)
    ax.plot([], [], color="grey", lw=2, label="best so far")
    ax.plot([], [], color="grey", lw=1, ls=":", label="population mean")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("generation")
    ax.set_ylabel("validation F1 (lottery-sample training)")
    ax.set_title("Genetic head search")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return save_figure(fig, path)


def plot_head_grids(masks: dict, path) -> list[str]:
    """The paper's Figure 9: one grid per prune rate, layers x heads, kept heads green, a
    dropped layer (no head kept) hatched grey and labelled. ``masks`` maps rate to [L, H]."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Rectangle

    rates = sorted(masks, key=float)
    if not rates:
        raise ValueError("plot_head_grids: no masks")
    n_layers, n_heads = np.asarray(masks[rates[0]]).shape
    fig, axes = plt.subplots(1, len(rates), figsize=(0.32 * n_heads * len(rates) + 1.5, 0.32 * n_layers + 1.4), squeeze=False)
    for ax, rate in zip(axes[0], rates):
        keep = np.asarray(masks[rate], dtype=bool)
        if keep.shape != (n_layers, n_heads):
            raise ValueError(f"plot_head_grids: mask at rate {rate} has shape {keep.shape}, expected {(n_layers, n_heads)}")
        ax.imshow(keep.astype(int), cmap=ListedColormap([PRUNED, KEPT]), vmin=0, vmax=1, aspect="equal")
        for layer in np.flatnonzero(~keep.any(1)):
            ax.add_patch(Rectangle((-0.5, layer - 0.5), n_heads, 1, facecolor=DROPPED, edgecolor="black", hatch="///", lw=0.5))
            ax.text((n_heads - 1) / 2, layer, "dropped", ha="center", va="center", fontsize=7,
                    bbox=dict(facecolor="white", edgecolor="none", pad=0.5))
        ax.set_xticks(np.arange(n_heads))
        ax.set_xticklabels([str(h + 1) for h in range(n_heads)], fontsize=6)
        ax.set_yticks(np.arange(n_layers))
        ax.set_yticklabels([str(layer + 1) for layer in range(n_layers)], fontsize=6)
        ax.set_xticks(np.arange(-0.5, n_heads), minor=True)
        ax.set_yticks(np.arange(-0.5, n_layers), minor=True)
        ax.grid(which="minor", color="white", lw=1)
        ax.tick_params(which="minor", length=0)
        ax.set_xlabel("head")
        ax.set_ylabel("encoder layer")
        ax.set_title(f"{_rate_label(rate)} pruned ({int(keep.sum())}/{keep.size} kept)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
