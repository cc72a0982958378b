"""The speed-quality frontier (issue #18): every method and rate placed on one speed axis,
the measured CPU inference speed-up of its physically pruned models (rule bench_inference),
against its test metric after the shared fine-tuning, both with intervals.

Whatever a method's rate counts (heads, weights, or the encoder's FLOPs for ``fisher`` and
``ga_ffn``), its models are timed the same way, so the speed-up is the common axis.

* metric: mean over runs with the paired-bootstrap interval over test examples and runs
  (:mod:`.stats`, as claims.csv); difference from the unpruned reference with its
  interval. A series fine-tuned with an augmentation (the methods in ``finetune.methods``)
  is measured against the unpruned model fine-tuned with the same augmentation, so the
  difference is what pruning costs under one recipe, and against the unpruned model without
  augmentation (``vs_unaugmented``); it is lossless / within the allocation only when it
  passes against both (an augmentation that also lifts the unpruned model cannot make a
  loss look lossless, nor one that hurts it lower the bar). The unpruned rows of the
  augmentations give each augmentation's own effect on the unpruned model;
* speed-up: the mean over a rate's masks (search seeds) of median(unpruned) /
  median(pruned) latency, and a 95% interval from resampling each mask's interleaved timing
  pairs (as :func:`.tables.inference_gain`);
* *speed-up at no significant loss*: among the rates that pass against the reference with
  :func:`.tables.passes` (the interval's upper end >= 0, no collapsed run) and every lower
  tested rate passes too (:func:`.tables.highest_contiguous`), the highest mean speed-up;
  *within the allocation* likewise against the reference minus ``report.loss_allocation``
  points;
* head-to-head: at each rate and augmentation two methods both ran (same rate = same head
  count, or same FLOPs budget), the paired bootstrap of one minus the other, and both
  speed-ups.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..io import save_figure  # noqa: E402
from . import stats, tables  # noqa: E402

# (challenger, competitor) pairs compared head to head, when both ran: the GA and Kwon et
# al.'s method on the same search space and budget
DUELS = [("ga_ffn", "fisher"), ("ga", "fisher_heads")]


def speedups(
    bench: dict | None, method: str, *, resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> dict[int, dict]:
    """Per rate of one method: the mean measured speed-up over its masks, its interval
    (each mask's timing pairs resampled), the mean FLOP speed-up, parameters and masks."""
    if not bench or method not in bench:
        return {}
    by_rate: dict[int, list[dict]] = {}
    for entry in bench[method]["entries"]:
        by_rate.setdefault(int(entry["rate"]), []).append(entry)
    rng = np.random.default_rng(seed)
    alpha = (1 - confidence) / 2
    out = {}
    for rate, entries in sorted(by_rate.items()):
        draws = []
        for e in entries:
            base, pruned = stats.resampled_medians(e["unpruned_ms"], e["pruned_ms"], resamples, rng)
            draws.append(base / pruned)
        draws = np.mean(draws, 0)
        out[rate] = {
            "speedup": float(np.mean([e["measured_speedup"] for e in entries])),
            "speedup_low": float(np.quantile(draws, alpha)),
            "speedup_high": float(np.quantile(draws, 1 - alpha)),
            "flop_speedup": float(np.mean([e["flop_speedup"] for e in entries])),
            "params": float(np.mean([e["pruned"]["params"] for e in entries])),
            "masks": len(entries),
            "bench_unit": entries[0].get("unit"),
        }
    return out


def _groups(results: tables.Results) -> dict[tuple, dict[int, tables.Cell]]:
    s = results.settings
    groups: dict[tuple, dict[int, tables.Cell]] = {}
    for cell in results.cells.values():
        if cell.method != "unpruned" and cell.selection == s.selection:
            groups.setdefault((cell.method, cell.augmentation), {})[cell.rate] = cell
    return groups


def _reference_rows(results: tables.Results) -> list[dict]:
    """The unpruned model with each augmentation it was fine-tuned with (``none`` first);
    an augmented one carries its difference from ``none``."""
    s = results.settings
    base = results.reference("none")
    augs = sorted({c.augmentation for c in results.cells.values() if c.method == "unpruned"} - {"none"})
    rows = []
    for aug in ["none", *augs]:
        ref = results.reference(aug)
        mean, low, high = results.interval(ref)
        row = {
            "method": "unpruned",
            "augmentation": aug,
            "reference": "unpruned/none",
            "unit": "",
            "rate": 0,
            "metric": s.metric,
            "value": mean,
            "ci_low": low,
            "ci_high": high,
            "runs": len(ref.preds),
            "speedup": 1.0,
            "speedup_low": 1.0,
            "speedup_high": 1.0,
            "flop_speedup": 1.0,
            "files": tables._files(ref, base),
        }
        if aug != "none":
            c = results.compare(ref, base)
            row.update(vs_reference=c.difference, vs_reference_low=c.low, vs_reference_high=c.high)
        rows.append(row)
    return rows


def points(results: tables.Results, bench: dict | None) -> pd.DataFrame:
    """One row per method, augmentation and rate (and the unpruned reference per
    augmentation): the metric and its interval, the difference from the unpruned model
    fine-tuned with the same augmentation and from the unaugmented one, with intervals,
    whether the rate is lossless / within the allocation (against both), the measured
    speed-up and its interval."""
    s = results.settings
    rows = _reference_rows(results)
    base = results.reference("none")
    groups = sorted(_groups(results).items())
    speeds = {  # a method's timings are the same for every augmentation it was fine-tuned with
        method: speedups(bench, method, resamples=s.resamples, confidence=s.confidence, seed=s.seed)
        for (method, _), _ in groups
    }
    for (method, aug), by_rate in groups:
        try:
            ref = results.reference(aug)
        except ValueError as e:
            raise ValueError(
                f"{method} was fine-tuned with augmentation {aug!r} but the unpruned model was not "
                f"(results/finetune/unpruned/{aug}/metrics.json, rule finetune_reference): {e}"
            ) from None
        for rate, cell in sorted(by_rate.items()):
            mean, low, high = results.interval(cell)
            # an augmented series must also hold against the unaugmented reference: an
            # augmentation that hurts the unpruned model would otherwise lower the bar
            refs = [ref] if aug == "none" else [ref, base]
            held = [tables.passes(results, cell, r, 0.0) for r in refs]  # (passes, comparison) per reference
            lossless = all(ok for ok, _ in held)
            within = all(tables.passes(results, cell, r, -s.allocation)[0] for r in refs)
            c0, c_base = held[0][1], held[-1][1]  # against ref and against base (the same when aug is none)
            sp = speeds[method].get(rate, {})
            rows.append(
                {
                    "method": method,
                    "augmentation": aug,
                    "reference": " ".join(f"unpruned/{r.augmentation}" for r in refs),
                    "unit": cell.unit,
                    "rate": rate,
                    "metric": s.metric,
                    "value": mean,
                    "ci_low": low,
                    "ci_high": high,
                    "runs": len(cell.preds),
                    "vs_reference": c0.difference,
                    "vs_reference_low": c0.low,
                    "vs_reference_high": c0.high,
                    "vs_unaugmented": c_base.difference,
                    "vs_unaugmented_low": c_base.low,
                    "vs_unaugmented_high": c_base.high,
                    "lossless": lossless,
                    "within": within,
                    "collapsed_runs": cell.collapsed_runs,
                    "speedup": sp.get("speedup", math.nan),
                    "speedup_low": sp.get("speedup_low", math.nan),
                    "speedup_high": sp.get("speedup_high", math.nan),
                    "flop_speedup": sp.get("flop_speedup", math.nan),
                    "params": sp.get("params", math.nan),
                    "masks_timed": sp.get("masks", 0),
                    "files": tables._files(cell, *refs)
                    + (f";{bench[method].get('file', '')}" if bench and method in bench else ""),
                }
            )
    out = pd.DataFrame(rows)
    out["test_n"] = len(results.labels)
    return out


def _best_speedup(rows: pd.DataFrame, column: str) -> pd.Series | None:
    """The row of the highest mean speed-up among the contiguous passing rates."""
    rates = sorted(rows["rate"])
    ok = dict(zip(rows["rate"], rows[column]))
    top = tables.highest_contiguous(rates, ok)
    if top is None:
        return None
    passing = rows[(rows["rate"] <= top) & rows["speedup"].notna()]
    if passing.empty:
        return None
    return passing.loc[passing["speedup"].idxmax()]


def frontier_table(pts: pd.DataFrame, allocation_points: float) -> pd.DataFrame:
    """Per method and augmentation: the speed-up it reaches at no significant loss and
    within the allocation, with the rate, metric and intervals behind each."""
    rows = []
    for (method, aug), group in pts[pts["method"] != "unpruned"].groupby(["method", "augmentation"], sort=True):
        group = group.sort_values("rate")
        row = {
            "method": method,
            "augmentation": aug,
            "unit": group["unit"].iloc[0],
            "rates_tested": " ".join(str(r) for r in group["rate"]),
            "metric": group["metric"].iloc[0],
            "allocation_points": allocation_points,
        }
        for name in ("lossless", "within"):
            best = _best_speedup(group, name)
            for col in (
                "rate",
                "speedup",
                "speedup_low",
                "speedup_high",
                "value",
                "vs_reference",
                "vs_reference_low",
                "vs_reference_high",
            ):
                row[f"{name}_{col}"] = None if best is None else best[col]
        row["max_speedup_tested"] = float(group["speedup"].max()) if group["speedup"].notna().any() else None
        row["files"] = ";".join(sorted({f for fs in group["files"] for f in str(fs).split(";") if f}))
        rows.append(row)
    out = pd.DataFrame(rows)
    for col in ("lossless_rate", "within_rate"):
        if col in out:
            out[col] = out[col].astype("Int64")
    return out


def versus(results: tables.Results, bench: dict | None, duels=DUELS) -> pd.DataFrame:
    """Head to head at every rate and augmentation both methods of a duel ran: the paired
    bootstrap of a - b, its verdict ("held" = a better), and both speed-ups."""
    s = results.settings
    rows = []
    for a, b in duels:
        speed_a = speedups(bench, a, resamples=s.resamples, confidence=s.confidence, seed=s.seed)
        speed_b = speedups(bench, b, resamples=s.resamples, confidence=s.confidence, seed=s.seed)
        keys = sorted(
            {(c.augmentation != "none", c.augmentation, c.rate) for c in results.cells.values() if c.method == a}
        )
        for _, aug, rate in keys:
            ca, cb = results.get(a, s.selection, rate, aug), results.get(b, s.selection, rate, aug)
            if ca is None or cb is None:
                continue
            c = results.compare(ca, cb)
            verdict = c.verdict()
            winner = a if verdict == "held" else (b if verdict == "not held" else "neither (inconclusive)")
            sa, sb = speed_a.get(rate, {}), speed_b.get(rate, {})
            rows.append(
                {
                    "a": a,
                    "b": b,
                    "augmentation": aug,
                    "unit": ca.unit,
                    "rate": rate,
                    "metric": s.metric,
                    "value_a": c.value_a,
                    "value_b": c.value_b,
                    "difference": c.difference,
                    "ci_low": c.low,
                    "ci_high": c.high,
                    "verdict": verdict,
                    "better": winner,
                    "runs_a": c.runs_a,
                    "runs_b": c.runs_b,
                    "test_n": c.n,
                    "speedup_a": sa.get("speedup", math.nan),
                    "speedup_a_low": sa.get("speedup_low", math.nan),
                    "speedup_a_high": sa.get("speedup_high", math.nan),
                    "speedup_b": sb.get("speedup", math.nan),
                    "speedup_b_low": sb.get("speedup_low", math.nan),
                    "speedup_b_high": sb.get("speedup_high", math.nan),
                    "files": tables._files(ca, cb),
                }
            )
    return pd.DataFrame(rows)


STYLE = {"ga": ("-", 2.2), "ga_ffn": ("-", 2.2), "fisher": ("--", 1.6), "fisher_heads": ("--", 1.6)}


def figure(pts: pd.DataFrame, path: str | Path, *, metric: str, allocation_points: float) -> list[str]:
    """Test metric vs measured speed-up, one panel per augmentation (no augmentation first),
    one line per method in the same colour on every panel, both with their 95% intervals;
    on each panel the unpruned model without augmentation dashed (its interval shaded, the
    allocation below it dotted) and, on an augmentation's panel, the unpruned model
    fine-tuned with it dash-dotted: the two references a point is decided against."""
    refs = pts[pts["method"] == "unpruned"].set_index("augmentation")
    series = pts[(pts["method"] != "unpruned") & pts["speedup"].notna()]
    augs = ["none", *sorted(set(series["augmentation"]) - {"none"})]
    present = set(series["method"])
    methods = [m for m in STYLE if m in present] + sorted(present - set(STYLE))  # the duels' first
    palette = plt.get_cmap("tab10").colors + plt.get_cmap("Dark2").colors
    colours = {m: palette[i % len(palette)] for i, m in enumerate(methods)}
    fig, axes = plt.subplots(1, len(augs), figsize=(7.0 * len(augs), 5.5), sharey=True, squeeze=False)
    ref = refs.loc["none"]
    for ax, aug in zip(axes[0], augs):
        ax.axhspan(ref["ci_low"], ref["ci_high"], color="black", alpha=0.08)
        ax.axhline(ref["value"], color="black", linestyle="--", linewidth=1.2, label="unpruned")
        ax.axhline(
            ref["value"] - allocation_points / 100,
            color="black",
            linestyle=":",
            linewidth=0.8,
            label=f"unpruned - {allocation_points:g} point(s)",
        )
        if aug != "none" and aug in refs.index:
            ax.axhline(
                refs.loc[aug, "value"], color="dimgrey", linestyle="-.", linewidth=1.0, label=f"unpruned + {aug}"
            )
        ax.axvline(2.0, color="grey", linewidth=0.6)
        for method, group in series[series["augmentation"] == aug].groupby("method", sort=True):
            group = group.sort_values("speedup")
            style, width = STYLE.get(method, (":", 1.0))
            xerr = np.array([group["speedup"] - group["speedup_low"], group["speedup_high"] - group["speedup"]])
            yerr = np.array([group["value"] - group["ci_low"], group["ci_high"] - group["value"]])
            ax.errorbar(
                group["speedup"],
                group["value"],
                xerr=np.clip(xerr, 0, None),
                yerr=np.clip(yerr, 0, None),
                linestyle=style,
                linewidth=width,
                color=colours[method],
                marker="o",
                markersize=3.5,
                capsize=2,
                label=f"{method} ({group['unit'].iloc[0]})",
            )
            for _, r in group.iterrows():
                ax.annotate(
                    f"{int(r['rate'])}",
                    (r["speedup"], r["value"]),
                    textcoords="offset points",
                    xytext=(3, 3),
                    fontsize=6,
                    color=colours[method],
                )
        ax.set_title("no augmentation" if aug == "none" else f"fine-tuned with the {aug} augmentation")
        ax.set_xlabel("measured inference speed-up on this CPU (unpruned / pruned latency)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left", ncol=2)
    axes[0][0].set_ylabel(f"test {metric} after the shared fine-tuning (mean over runs)")
    fig.suptitle("Speed-quality frontier (numbers: the rate; heads % or FLOPs % removed by unit)")
    fig.tight_layout()
    return save_figure(fig, path)


def report(metrics_paths, bench_paths, settings: tables.Settings) -> dict[str, pd.DataFrame]:
    """Everything the frontier rule writes, from the result files."""
    from ..io import read_json

    results = tables.load_results(metrics_paths, settings)
    bench = {b["method"]: b for b in map(read_json, bench_paths)}
    pts = points(results, bench)
    return {"points": pts, "table": frontier_table(pts, settings.loss_allocation), "versus": versus(results, bench)}
