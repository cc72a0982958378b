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

from ..io import save_figure  # noqa: E402

KEPT = "#2e9e44"
PRUNED = "#f2f2f2"
DROPPED = "#b0b0b0"


def _rate_label(rate) -> str:
    value = float(rate)
    if value < 1:  # a fraction
        value *= 100
    return f"{value:g}%"


def figure7(results, path: str | Path) -> list[str]:
    """The metric vs prune rate, one line per method and augmentation (mean over runs with
    its 95% bootstrap interval); the unpruned reference dashed, its interval shaded."""
    s = results.settings
    fig, ax = plt.subplots(figsize=(8, 5))
    ref_mean, ref_low, ref_high = results.interval(results.reference("none"))
    groups: dict[tuple, list] = {}
    for cell in results.cells.values():
        if cell.method != "unpruned" and cell.selection == s.selection:
            groups.setdefault((cell.method, cell.augmentation), []).append(cell)
    for (method, aug), cells in sorted(groups.items()):
        cells = sorted(cells, key=lambda c: c.rate)
        rates = [c.rate for c in cells]
        stats = [results.interval(c) for c in cells]
        mean = np.array([m for m, _, _ in stats])
        err = np.array([[m - lo for m, lo, _ in stats], [hi - m for m, _, hi in stats]])
        ax.errorbar(
            rates,
            mean,
            yerr=err,
            label=method + ("" if aug == "none" else f" + {aug}"),
            linestyle="-" if method == "ga" else ":",
            linewidth=2.2 if method == "ga" else 1.2,
            marker="o",
            markersize=3,
            capsize=2,
        )
    ax.axhline(ref_mean, color="black", linestyle="--", linewidth=1.2, label="unpruned")
    ax.axhspan(ref_low, ref_high, color="black", alpha=0.08)
    ax.set_xlabel("heads pruned (%)  [weights for weight-level methods]")
    ax.set_ylabel(f"test {s.metric} (mean over runs, 95% interval)")
    ax.set_title("Figure 7: test score vs prune rate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    return save_figure(fig, path)


def figure8(results, bench: dict, path: str | Path) -> list[str]:
    """Fine-tuning time and inference latency vs prune rate (no augmentation)."""
    s = results.settings
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    by_method: dict[str, list] = {}
    for cell in results.cells.values():
        if cell.method != "unpruned" and cell.selection == s.selection and cell.augmentation == "none":
            by_method.setdefault(cell.method, []).append(cell)
    for method, cells in sorted(by_method.items()):
        cells = sorted(cells, key=lambda c: c.rate)
        left.plot(
            [c.rate for c in cells], [c.train_seconds / 60 for c in cells], marker="o", markersize=3, label=method
        )
    unpruned = []
    for method, b in sorted(bench.items()):
        per_rate: dict[int, list[float]] = {}
        for e in b["entries"]:
            per_rate.setdefault(int(e["rate"]), []).append(e["pruned"]["latency_s"] * 1e3)
            unpruned.append(e["unpruned"]["latency_s"] * 1e3)
        rates = sorted(per_rate)
        right.plot(rates, [np.mean(per_rate[r]) for r in rates], marker="o", markersize=3, label=method)
    if unpruned:
        right.axhline(float(np.median(unpruned)), color="black", linestyle="--", linewidth=1.2, label="unpruned")
    left.set_xlabel("prune rate (%)")
    left.set_ylabel("fine-tuning time per run (min)")
    left.set_title("training time")
    right.set_xlabel("prune rate (%)")
    right.set_ylabel("inference latency per batch (ms)")
    right.set_title("inference time (same batch size)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Figure 8: training and inference time vs prune rate")
    return save_figure(fig, path)


def plot_fitness_history(histories: dict, path, metric: str = "validation score") -> list[str]:
    """Best-ever and population-mean validation score per generation, one colour per prune
    rate, one line per search seed. ``histories`` maps a rate (percent) to the GA's history
    (list of dicts with ``generation``, ``mean``, ``best_ever``) or to a list of them."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    cmap = plt.get_cmap("viridis")
    rates = sorted(histories, key=float)
    for i, rate in enumerate(rates):
        runs = histories[rate]
        if runs and isinstance(runs[0], dict):
            runs = [runs]
        colour = cmap(0.85 * i / max(1, len(rates) - 1))  # the top of viridis is too pale
        for k, hist in enumerate(runs):
            if not hist:
                continue
            gen = [h["generation"] for h in hist]
            ax.plot(
                gen,
                [h["best_ever"] for h in hist],
                color=colour,
                lw=2,
                label=f"{_rate_label(rate)} pruned" if k == 0 else None,
            )
            ax.plot(gen, [h["mean"] for h in hist], color=colour, lw=1, ls=":", alpha=0.8)
    ax.plot([], [], color="grey", lw=2, label="best so far")
    ax.plot([], [], color="grey", lw=1, ls=":", label="population mean")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("generation")
    ax.set_ylabel(f"validation {metric} (lottery-sample training)")
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
    fig, axes = plt.subplots(
        1, len(rates), figsize=(0.32 * n_heads * len(rates) + 1.5, 0.32 * n_layers + 1.4), squeeze=False
    )
    for ax, rate in zip(axes[0], rates):
        keep = np.asarray(masks[rate], dtype=bool)
        if keep.shape != (n_layers, n_heads):
            raise ValueError(
                f"plot_head_grids: mask at rate {rate} has shape {keep.shape}, expected {(n_layers, n_heads)}"
            )
        ax.imshow(keep.astype(int), cmap=ListedColormap([PRUNED, KEPT]), vmin=0, vmax=1, aspect="equal")
        for layer in np.flatnonzero(~keep.any(1)):
            ax.add_patch(
                Rectangle((-0.5, layer - 0.5), n_heads, 1, facecolor=DROPPED, edgecolor="black", hatch="///", lw=0.5)
            )
            ax.text(
                (n_heads - 1) / 2,
                layer,
                "dropped",
                ha="center",
                va="center",
                fontsize=7,
                bbox=dict(facecolor="white", edgecolor="none", pad=0.5),
            )
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
