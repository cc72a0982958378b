"""The paper's tables and the claims file, computed from result files only.

Every number compares runs through :mod:`.stats`: a mean over runs (seeds, random draws)
with a 95% paired-bootstrap interval over the test examples and the runs, the number of
runs and test examples behind it, and a verdict that may be "inconclusive". Every table
row names the result files it was computed from (``files``). Measured rows and the rates
the papers publish (``source == "reported"``) are separate rows and never mixed.

Definitions (docs/methods.md, "Shared protocol", says the same):

* the metric is the config's ``metric`` (macro-F1 by default); every other metric stays in
  the result files;
* a run is *collapsed* when it answers one class on at least ``report.collapse`` of the
  test split; a rate with a collapsed run is never lossless nor within the allocation;
* *lossless at r*: not significantly worse than the unpruned reference (the upper end of
  the interval of method - reference is >= 0); *within the allocation at r*: likewise
  against the reference minus ``report.loss_allocation`` points;
* the lossless (within) rate is the highest tested rate r for which r and every lower
  tested rate pass; the paper's reference is the unpruned model fine-tuned without
  augmentation, and augmented rows are also compared with the unpruned model under the
  same augmentation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import read_json
from . import stats

# Published head-pruning rates (Bluteau & Gras 2025, Table 5 and section 2). Percent of heads.
REPORTED = [
    {
        "method": "ga (Bluteau & Gras)",
        "lossless_rate": 70,
        "within_rate": 90,
        "model": "bert-base-uncased",
        "data": "Sentiment140",
        "citation": "Bluteau & Gras (2025), genetic lottery head pruning, Table 5",
    },
    {
        "method": "importance (Michel et al.)",
        "lossless_rate": 40,
        "within_rate": None,
        "model": "BERT",
        "data": "MNLI",
        "citation": "Michel, Levy & Neubig (2019), arXiv:1905.10650",
    },
    {
        "method": "A* search (Parnami et al.)",
        "lossless_rate": 40,
        "within_rate": 92,
        "model": "BERT",
        "data": "sentiment",
        "citation": "Parnami, Singh & Joshi (2021), arXiv:2110.15225",
    },
    {
        "method": "SMP (Zhang et al.)",
        "lossless_rate": 50,
        "within_rate": None,
        "model": "BERT",
        "data": "GLUE",
        "citation": "Zhang et al. (2020), arXiv:2011.03770",
    },
    {
        "method": "peer distillation (Li et al.)",
        "lossless_rate": 58,
        "within_rate": None,
        "model": "BERT",
        "data": "GLUE",
        "citation": "Li et al. (2023), IJCAI-23",
    },
    {
        "method": "lottery heads (Behnke & Heafield)",
        "lossless_rate": 72,
        "within_rate": None,
        "model": "Transformer-big (NMT)",
        "data": "translation",
        "citation": "Behnke & Heafield (2020), EMNLP; 50-72% with no significant damage",
    },
]
# The paper's inference claim: "Inference time was also improved by up to 47.2%".
PAPER_INFERENCE_GAIN = 0.472


@dataclass(frozen=True)
class Settings:
    """What a comparison needs: config ``metric``, ``report.*`` and the default selection."""

    metric: str
    selection: str  # the lottery sample every method searched on (select.default)
    reference_rate: int  # Tables 4 and 6 (report.reference_rate)
    loss_allocation: float  # points of the metric (report.loss_allocation)
    resamples: int
    confidence: float
    collapse: float  # share of one class that marks a collapsed run
    seed: int

    @property
    def allocation(self) -> float:
        return self.loss_allocation / 100.0


@dataclass
class Cell:
    """Every run of one (method, selection, rate, augmentation): predictions [runs, n]."""

    method: str
    selection: str | None
    rate: int
    augmentation: str
    unit: str
    runs: list[dict]
    preds: np.ndarray
    file: str
    train_seconds: float = math.nan
    collapsed_runs: int = 0

    @property
    def key(self) -> tuple:
        return (self.method, self.selection, self.rate, self.augmentation)


@dataclass
class Results:
    """Every fine-tuning cell and the test labels they were all scored on."""

    cells: dict[tuple, Cell]
    labels: np.ndarray
    ids: list[str]
    settings: Settings
    extra_files: list[str] = field(default_factory=list)

    def get(self, method: str, selection: str | None, rate: int, augmentation: str) -> Cell | None:
        return self.cells.get((method, selection, int(rate), augmentation))

    def reference(self, augmentation: str = "none") -> Cell:
        cell = self.get("unpruned", None, 0, augmentation)
        if cell is None:
            raise ValueError(f"no unpruned reference with augmentation {augmentation!r}")
        return cell

    def value(self, cell: Cell) -> float:
        return float(np.mean([stats.metric(self.labels, p, self.settings.metric) for p in cell.preds]))

    def interval(self, cell: Cell) -> tuple[float, float, float]:
        s = self.settings
        return stats.bootstrap_interval(
            cell.preds, self.labels, s.metric, resamples=s.resamples, confidence=s.confidence, seed=s.seed
        )

    def compare(self, a: Cell, b: Cell, margin: float = 0.0) -> stats.Comparison:
        s = self.settings
        return stats.paired_bootstrap(
            a.preds,
            b.preds,
            self.labels,
            s.metric,
            margin=margin,
            resamples=s.resamples,
            confidence=s.confidence,
            seed=s.seed,
        )


def load_results(metrics_paths: Iterable[str | Path], settings: Settings) -> Results:
    """Every fine-tuning cell (``metrics.json`` and the ``predictions.parquet`` beside it).

    All cells must have predicted the same test examples in the same order."""
    cells: dict[tuple, Cell] = {}
    labels = ids = None
    for path in metrics_paths:
        m = read_json(path)
        pred_path = Path(path).with_name("predictions.parquet")
        frame = pd.read_parquet(pred_path)
        runs = m["runs"]
        rows = []
        for run in runs:
            part = frame[
                (frame["search_seed"] == run["search_seed"]) & (frame["finetune_seed"] == run["finetune_seed"])
            ]
            if labels is None:
                labels, ids = part["label"].to_numpy(int), part["id"].astype(str).tolist()
            elif part["id"].astype(str).tolist() != ids:
                raise ValueError(f"{pred_path}: its test examples differ from the other cells' (not one split?)")
            rows.append(part["pred"].to_numpy(int))
        preds = np.stack(rows)
        cell = Cell(
            method=m["method"],
            selection=m.get("selection"),
            rate=int(m.get("rate") or 0),
            augmentation=m["augmentation"],
            unit=m.get("unit", "heads"),
            runs=runs,
            preds=preds,
            file=str(path),
            train_seconds=float(np.mean([r.get("train_seconds", math.nan) for r in runs])),
            collapsed_runs=sum(stats.collapsed(p, settings.collapse) for p in preds),
        )
        cells[cell.key] = cell
    if not cells:
        raise ValueError("no fine-tuning results to report")
    return Results(cells, labels, ids, settings)


def _files(*cells: Cell | None) -> str:
    return ";".join(sorted({c.file for c in cells if c is not None}))


def _fmt(x: float) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"


def distribution(results: Results, cell: Cell) -> dict:
    """Mean, sd, best and worst of the metric over a cell's runs (random's draws, seeds)."""
    values = np.array([stats.metric(results.labels, p, results.settings.metric) for p in cell.preds])
    return {
        "mean": float(values.mean()),
        "sd": float(values.std(ddof=1)) if len(values) > 1 else math.nan,
        "best": float(values.max()),
        "worst": float(values.min()),
        "runs": len(values),
    }


# --------------------------------------------------------------------------- lossless rates


def passes(results: Results, cell: Cell | None, reference: Cell, margin: float) -> tuple[bool, stats.Comparison | None]:
    """Not significantly worse than ``reference`` - allocation (``margin`` = -allocation), and no collapsed run."""
    if cell is None:
        return False, None
    comparison = results.compare(cell, reference, margin=margin)
    return (comparison.high >= 0 and cell.collapsed_runs == 0), comparison


def highest_contiguous(rates: list[int], ok: dict[int, bool]) -> int | None:
    """The highest rate r such that r and every lower tested rate pass (None if the lowest fails)."""
    best = None
    for rate in sorted(rates):
        if not ok.get(rate, False):
            break
        best = rate
    return best


def _speedups(bench: dict[str, dict] | None, method: str) -> dict[int, float]:
    """Mean measured inference speed-up per rate of one method (over its seeds' masks)."""
    if not bench or method not in bench:
        return {}
    out: dict[int, list[float]] = {}
    for entry in bench[method]["entries"]:
        out.setdefault(int(entry["rate"]), []).append(entry["measured_speedup"])
    return {r: float(np.mean(v)) for r, v in out.items()}


def table5(results: Results, *, model: str, data: str, bench: dict[str, dict] | None = None) -> pd.DataFrame:
    """Per method and augmentation: the highest lossless rate and the highest rate within
    the allocation (contiguous, decided by the paired bootstrap), with the distribution of
    the metric over runs at every rate, and the reported rates of the papers."""
    s = results.settings
    ref = results.reference("none")
    ref_mean, ref_low, ref_high = results.interval(ref)
    groups: dict[tuple, list[Cell]] = {}
    for cell in results.cells.values():
        if cell.method != "unpruned" and cell.selection == s.selection:
            groups.setdefault((cell.method, cell.augmentation), []).append(cell)
    rows = []
    for (method, aug), cells in sorted(groups.items()):
        by_rate = {c.rate: c for c in cells}
        rates = sorted(by_rate)
        speed = _speedups(bench, method)
        row = {
            "source": "measured",
            "method": method,
            "augmentation": aug,
            "unit": cells[0].unit,
            "model": model,
            "data": data,
            "metric": s.metric,
            "reference": "unpruned, no augmentation",
            "reference_value": ref_mean,
            "reference_ci_low": ref_low,
            "reference_ci_high": ref_high,
        }
        verdicts = {}
        for name, margin in (("lossless", 0.0), ("within", -s.allocation)):
            ok, comparisons = {}, {}
            for rate in rates:
                ok[rate], comparisons[rate] = passes(results, by_rate[rate], ref, margin)
            best = highest_contiguous(rates, ok)
            verdicts[name] = comparisons
            row[f"{name}_rate"] = best
            row[f"value_at_{name}"] = results.value(by_rate[best]) if best is not None else None
            row[f"speedup_at_{name}"] = speed.get(best) if best is not None else None
        if aug != "none":
            same = results.get("unpruned", None, 0, aug)
            if same is not None:
                ok = {r: passes(results, by_rate[r], same, 0.0)[0] for r in rates}
                row["lossless_rate_vs_same_augmentation"] = highest_contiguous(rates, ok)
        row["rates_tested"] = " ".join(str(r) for r in rates)
        row["runs"] = " ".join(f"{r}%:{len(by_rate[r].preds)}" for r in rates)
        row["test_n"] = len(results.labels)
        row["collapsed"] = (
            " ".join(f"{r}%:{by_rate[r].collapsed_runs}" for r in rates if by_rate[r].collapsed_runs) or ""
        )
        row["per_rate"] = "; ".join(
            "{}%: mean {} sd {} best {} (n={}), vs reference {:+.4f} [{:+.4f}, {:+.4f}]".format(
                r,
                _fmt(d["mean"]),
                _fmt(d["sd"]),
                _fmt(d["best"]),
                d["runs"],
                verdicts["lossless"][r].difference,
                verdicts["lossless"][r].low,
                verdicts["lossless"][r].high,
            )
            for r in rates
            for d in [distribution(results, by_rate[r])]
        )
        row["speedup"] = " ".join(f"{r}%:{speed[r]:.3f}" for r in rates if r in speed)
        if cells[0].unit == "weights":  # zeros in dense matrices: the same shapes, the same kernels
            row["speedup_note"] = (
                "weight mask: the model stays dense, so it runs at the unpruned speed (measured: speedup)"
            )
        row["citation"] = ""
        row["files"] = _files(ref, *cells)
        rows.append(row)
    for rep in REPORTED:
        rows.append(
            {
                "source": "reported",
                "method": rep["method"],
                "augmentation": "",
                "unit": "heads",
                "model": rep["model"],
                "data": rep["data"],
                "metric": "F1 / accuracy as published",
                "lossless_rate": rep["lossless_rate"],
                "within_rate": rep["within_rate"],
                "citation": rep["citation"],
                "files": "",
            }
        )
    out = pd.DataFrame(rows)
    for column in ("lossless_rate", "within_rate", "lossless_rate_vs_same_augmentation"):
        if column in out:
            out[column] = out[column].astype("Int64")
    return out


# --------------------------------------------------------------------------- tables 4 and 6


def table4(results: Results, table2: pd.DataFrame, *, table2_file: str) -> pd.DataFrame:
    """Every compression method as the augmentation of the GA at the reference rate: the
    metric's mean and interval over runs, its difference from GA without augmentation and
    from the unpruned reference, and the quality of the 0-shot labels themselves (Table 2)."""
    s = results.settings
    ref = results.reference("none")
    base = results.get("ga", s.selection, s.reference_rate, "none")
    labels = table2.set_index("method")
    rows = []
    for cell in results.cells.values():
        if cell.method != "ga" or cell.selection != s.selection or cell.rate != s.reference_rate:
            continue
        mean, low, high = results.interval(cell)
        row = {
            "method": "ga",
            "rate": cell.rate,
            "augmentation": cell.augmentation,
            "metric": s.metric,
            "value": mean,
            "ci_low": low,
            "ci_high": high,
            "runs": len(cell.preds),
            "test_n": len(results.labels),
            "collapsed_runs": cell.collapsed_runs,
        }
        for name, other in (("vs_no_augmentation", base), ("vs_unpruned", ref)):
            if other is not None and other is not cell:
                c = results.compare(cell, other)
                row[f"{name}"] = c.difference
                row[f"{name}_ci_low"], row[f"{name}_ci_high"], row[f"{name}_verdict"] = c.low, c.high, c.verdict()
        for col in ("accuracy", "f1", "macro_f1"):
            if col in labels.columns:
                row[f"label_{col}"] = (
                    labels[col].get(cell.augmentation, np.nan) if cell.augmentation != "none" else np.nan
                )
        row["files"] = _files(cell, ref, base) + ";" + table2_file
        rows.append(row)
    return pd.DataFrame(rows).sort_values("value", ascending=False).reset_index(drop=True) if rows else pd.DataFrame()


def table6(results: Results, summaries: dict[str, dict]) -> pd.DataFrame:
    """Random vs K-means lottery selection at each selection rate: the GA at the reference
    rate, no augmentation; the search's own validation fitness and the final test metric."""
    s = results.settings
    rows = []
    for cell in results.cells.values():
        if (
            cell.method != "ga"
            or cell.rate != s.reference_rate
            or cell.augmentation != "none"
            or cell.selection is None
        ):
            continue
        selector, srate = cell.selection.split("-", 1)
        summary = summaries.get(cell.selection)
        mean, low, high = results.interval(cell)
        fitness = [r["valid"][s.metric] for r in summary["runs"]] if summary else []
        rows.append(
            {
                "rate": cell.rate,
                "selector": selector,
                "selection_rate": float(srate),
                "lottery_size": summary["lottery_size"] if summary else np.nan,
                "search_valid": float(np.mean(fitness)) if fitness else np.nan,
                "metric": s.metric,
                "value": mean,
                "ci_low": low,
                "ci_high": high,
                "runs": len(cell.preds),
                "test_n": len(results.labels),
                "collapsed_runs": cell.collapsed_runs,
                "files": _files(cell)
                + (f";results/prune/ga/{cell.selection}/{cell.rate}/summary.json" if summary else ""),
            }
        )
    if not rows:
        return pd.DataFrame()
    return (
        pd.DataFrame(rows).sort_values(["selection_rate", "selector"], ascending=[False, True]).reset_index(drop=True)
    )


# --------------------------------------------------------------------------- claims


CLAIM_COLUMNS = [
    "claim",
    "paper",
    "comparison",
    "metric",
    "difference",
    "ci_low",
    "ci_high",
    "runs_a",
    "runs_b",
    "test_n",
    "verdict",
    "measured",
    "files",
]


def _claim(
    claim: str,
    paper: str,
    comparison: str,
    results: Results,
    c: stats.Comparison | None,
    files: str,
    measured: str = "",
    verdict: str | None = None,
) -> dict:
    row = {
        "claim": claim,
        "paper": paper,
        "comparison": comparison,
        "metric": results.settings.metric,
        "files": files,
        "measured": measured,
        "test_n": len(results.labels),
    }
    if c is None:
        row["verdict"] = verdict or "not tested"
        return row
    row.update(
        {
            "difference": c.difference,
            "ci_low": c.low,
            "ci_high": c.high,
            "runs_a": c.runs_a,
            "runs_b": c.runs_b,
            "verdict": verdict or c.verdict(),
        }
    )
    if not measured:
        row["measured"] = f"{_fmt(c.value_a)} vs {_fmt(c.value_b)}" + (f" (margin {c.margin:+.4f})" if c.margin else "")
    return row


def claims(
    results: Results,
    *,
    rates: list[int],
    table2_preds: dict[str, np.ndarray] | None = None,
    bench: dict[str, dict] | None = None,
) -> pd.DataFrame:
    """Each of the paper's claims, decided by a paired bootstrap: held / not held / inconclusive
    (or "not tested" when the run did not include what it needs)."""
    s = results.settings
    sel, ref = s.selection, results.reference("none")
    rows = []

    # 1. GA beats random head pruning (section 4: "we exceed random pruning in all cases")
    per_rate = []
    for rate in sorted(rates):
        ga, rnd = results.get("ga", sel, rate, "none"), results.get("random", sel, rate, "none")
        c = results.compare(ga, rnd) if ga is not None and rnd is not None else None
        per_rate.append(c.verdict() if c else "not tested")
        rows.append(
            _claim(
                f"GA beats random head pruning at {rate}%",
                "section 4, Figure 7",
                "ga - random (no augmentation)",
                results,
                c,
                _files(ga, rnd),
            )
        )
    overall = (
        "held"
        if per_rate and all(v == "held" for v in per_rate)
        else ("not held" if "not held" in per_rate else ("not tested" if not per_rate else "inconclusive"))
    )
    rows.append(
        _claim(
            "GA beats random head pruning at every prune rate",
            "section 4",
            "all rates above",
            results,
            None,
            "",
            measured=", ".join(f"{r}%: {v}" for r, v in zip(sorted(rates), per_rate)),
            verdict=overall,
        )
    )

    # 2-3. lossless / within the allocation with LDA augmentation (abstract, section 4, Table 5)
    for aug_rate, margin, text, paper in (
        (70, 0.0, "GA with LDA augmentation is lossless at 70% of heads pruned", "abstract; Table 5 (lossless 70%)"),
        (
            90,
            -s.allocation,
            f"GA with LDA augmentation stays within {s.loss_allocation:g} point(s) at 90% pruned",
            "abstract; Table 5 (90% with 1% loss)",
        ),
    ):
        cell = results.get("ga", sel, aug_rate, "lda")
        c = results.compare(cell, ref, margin=margin) if cell is not None else None
        verdict = "not held (collapsed runs)" if cell is not None and cell.collapsed_runs else None
        rows.append(
            _claim(
                text,
                paper,
                "ga+lda - unpruned (no augmentation)" + (f" + {-margin:.4f}" if margin else ""),
                results,
                c,
                _files(cell, ref),
                verdict=verdict,
            )
        )
        same = results.get("unpruned", None, 0, "lda")
        if cell is not None and same is not None:
            c2 = results.compare(cell, same, margin=margin)
            rows.append(
                _claim(
                    text + " (against the unpruned model with the same augmentation)",
                    paper,
                    "ga+lda - unpruned+lda" + (f" + {-margin:.4f}" if margin else ""),
                    results,
                    c2,
                    _files(cell, same),
                    verdict=verdict,
                )
            )

    # 4. the GA alone (section 4: "retain F1 with only minor loss up to 50-60%")
    cell = results.get("ga", sel, 50, "none")
    c = results.compare(cell, ref, margin=-s.allocation) if cell is not None else None
    rows.append(
        _claim(
            f"GA without augmentation stays within {s.loss_allocation:g} point(s) at 50% pruned",
            "section 4 (minor loss up to 50-60%)",
            f"ga - unpruned + {s.allocation:.4f}",
            results,
            c,
            _files(cell, ref),
            verdict="not held (collapsed runs)" if cell is not None and cell.collapsed_runs else None,
        )
    )

    # 5. K-means selection beats random selection at 1% and 0.5% (Table 6)
    for srate in ("1", "0.5"):
        k = results.get("ga", f"kmeans-{srate}", s.reference_rate, "none")
        r = results.get("ga", f"random-{srate}", s.reference_rate, "none")
        c = results.compare(k, r) if k is not None and r is not None else None
        rows.append(
            _claim(
                f"K-means lottery selection beats random selection at {srate}% of the train split",
                "section 4, Table 6",
                f"ga@{s.reference_rate}%: kmeans - random",
                results,
                c,
                _files(k, r),
            )
        )

    # 6. LDA among the top compression methods for augmentation (Table 4)
    augmented = {
        c.augmentation: c
        for c in results.cells.values()
        if c.method == "ga" and c.selection == sel and c.rate == s.reference_rate and c.augmentation != "none"
    }
    if "lda" in augmented and len(augmented) > 3:
        others = {a: c.preds for a, c in augmented.items() if a != "lda"}
        point, low, high = stats.rank_margin(
            augmented["lda"].preds,
            others,
            results.labels,
            s.metric,
            3,
            resamples=s.resamples,
            confidence=s.confidence,
            seed=s.seed,
        )
        ranked = sorted(augmented, key=lambda a: -results.value(augmented[a]))
        rows.append(
            {
                "claim": f"LDA is among the top 3 compression methods for augmentation at {s.reference_rate}%",
                "paper": "section 4, Table 4",
                "comparison": "lda - third best of the others",
                "metric": s.metric,
                "difference": point,
                "ci_low": low,
                "ci_high": high,
                "runs_a": len(augmented["lda"].preds),
                "runs_b": min(len(c.preds) for c in augmented.values()),
                "test_n": len(results.labels),
                "verdict": stats.verdict(low, high),
                "measured": "ranking: " + ", ".join(f"{a} {_fmt(results.value(augmented[a]))}" for a in ranked),
                "files": _files(*augmented.values()),
            }
        )
    else:
        rows.append(
            _claim(
                f"LDA is among the top 3 compression methods for augmentation at {s.reference_rate}%",
                "section 4, Table 4",
                "lda - third best of the others",
                results,
                None,
                "",
            )
        )

    # 7. 0-shot compression beats direct prediction (Table 2: "most approaches outperform direct")
    if table2_preds and "direct" in table2_preds:
        wins = []
        for method, pred in table2_preds.items():
            if method == "direct":
                continue
            c = stats.paired_bootstrap(
                pred,
                table2_preds["direct"],
                results.labels,
                s.metric,
                resamples=s.resamples,
                confidence=s.confidence,
                seed=s.seed,
            )
            wins.append(c.verdict())
            rows.append(
                _claim(
                    f"0-shot label compression '{method}' beats direct sentiment prediction",
                    "section 3.1, Table 2",
                    f"{method} - direct (0-shot labels vs true test labels)",
                    results,
                    c,
                    f"results/compress/{method}/labels.parquet;results/compress/direct/labels.parquet",
                )
            )

    # 8. inference time (abstract: "improved by up to 47.2%")
    gain = inference_gain(bench, "ga", max(rates)) if bench else None
    if gain is None:
        rows.append(
            _claim(
                f"Inference time improves by at least {PAPER_INFERENCE_GAIN:.1%} at the highest rate",
                "abstract",
                "",
                results,
                None,
                "",
            )
        )
    else:
        mean, low, high, n = gain
        rows.append(
            {
                "claim": f"Inference time improves by at least {PAPER_INFERENCE_GAIN:.1%} at the highest rate ({max(rates)}%)",
                "paper": "abstract (up to 47.2%)",
                "comparison": "1 - pruned/unpruned latency - 0.472",
                "metric": "latency",
                "difference": mean - PAPER_INFERENCE_GAIN,
                "ci_low": low - PAPER_INFERENCE_GAIN,
                "ci_high": high - PAPER_INFERENCE_GAIN,
                "runs_a": n,
                "runs_b": n,
                "test_n": None,
                "verdict": stats.verdict(low - PAPER_INFERENCE_GAIN, high - PAPER_INFERENCE_GAIN),
                "measured": f"latency reduced by {mean:.1%} [{low:.1%}, {high:.1%}] over {n} GA masks",
                "files": bench["ga"].get("file", ""),
            }
        )
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


def inference_gain(bench: dict[str, dict], method: str, rate: int, *, resamples: int = 2000, seed: int = 0):
    """Mean latency reduction 1 - t_pruned / t_unpruned of a method's masks at ``rate`` and its
    95% interval, resampling each mask's interleaved (unpruned, pruned) timing pairs."""
    if method not in bench:
        return None
    entries = [e for e in bench[method]["entries"] if int(e["rate"]) == int(rate)]
    if not entries:
        return None
    rng = np.random.default_rng(seed)
    draws = []
    for e in entries:
        base, pruned = stats.resampled_medians(e["unpruned_ms"], e["pruned_ms"], resamples, rng)
        draws.append(1 - pruned / base)
    draws = np.mean(draws, 0)
    point = float(np.mean([1 - np.median(e["pruned_ms"]) / np.median(e["unpruned_ms"]) for e in entries]))
    return point, float(np.quantile(draws, 0.025)), float(np.quantile(draws, 0.975)), len(entries)


def own_protocol(summaries: Iterable[dict], metric: str) -> pd.DataFrame:
    """Methods whose paper evaluates their own trained, pruned model (SEVEN; magnitude's
    prune-and-fine-tune): that model's validation score beside the shared protocol's (the
    mask on the pretrained model, then the same short training as every method), per rate,
    mean over search seeds, on the same validation subsets."""
    rows = []
    for s in summaries:
        own = [r["extras"]["own_model"] for r in s["runs"] if "own_model" in r.get("extras", {})]
        if not own:
            continue
        rows.append(
            {
                "method": s["method"],
                "rate": s["rate"],
                "unit": s["unit"],
                "metric": metric,
                "seeds": len(own),
                "shared_protocol": float(np.mean([r["valid"][metric] for r in s["runs"]])),
                "own_model": float(np.mean([o[metric] for o in own])),
                "own_protocol": own[0].get("protocol", ""),
                "valid_n": s.get("valid_size"),
            }
        )
    columns = ["method", "rate", "unit", "metric", "seeds", "shared_protocol", "own_model", "own_protocol", "valid_n"]
    return pd.DataFrame(rows, columns=columns).sort_values(["method", "rate"]).reset_index(drop=True)


def table2_predictions(labels_by_method: dict[str, pd.DataFrame], test_ids: list[str]) -> dict[str, np.ndarray]:
    """Each compression method's 0-shot label of every test example, in ``test_ids`` order."""
    out = {}
    for method, frame in labels_by_method.items():
        lab = frame[frame["dataset"] == "labelled"].assign(id=lambda f: f["id"].astype(str)).set_index("id")["label"]
        missing = [i for i in test_ids if i not in lab.index]
        if missing:
            raise ValueError(f"compress/{method}: test id {missing[0]!r} has no label")
        out[method] = lab.loc[test_ids].to_numpy(int)
    return out
