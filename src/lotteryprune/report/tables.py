"""The paper's tables and the claims file, computed from result files only.

Every table row carries a ``files`` column naming the result files it was computed from,
so each number traces back to ``results/``. Measured rows and the rates the papers
publish (``source == "reported"``) are separate rows and never mixed.
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np
import pandas as pd

from ..io import read_json

METRICS = ("accuracy", "f1", "mcc")

# Published head-pruning rates (Bluteau & Gras 2025, Table 5 and section 2). Percent of heads.
REPORTED = [
    {"method": "ga (Bluteau & Gras)", "lossless_rate": 70, "within_rate": 90, "model": "bert-base-uncased", "data": "Sentiment140",
     "citation": "Bluteau & Gras (2025), genetic lottery head pruning, Table 5"},
    {"method": "importance (Michel et al.)", "lossless_rate": 40, "within_rate": None, "model": "BERT", "data": "MNLI",
     "citation": "Michel, Levy & Neubig (2019), arXiv:1905.10650"},
    {"method": "A* search (Parnami et al.)", "lossless_rate": 40, "within_rate": 92, "model": "BERT", "data": "sentiment",
     "citation": "Parnami, Singh & Joshi (2021), arXiv:2110.15225"},
    {"method": "SMP (Zhang et al.)", "lossless_rate": 50, "within_rate": None, "model": "BERT", "data": "GLUE",
     "citation": "Zhang et al. (2020), arXiv:2011.03770"},
    {"method": "peer distillation (Li et al.)", "lossless_rate": 58, "within_rate": None, "model": "BERT", "data": "GLUE",
     "citation": "Li et al. (2023), IJCAI-23"},
    {"method": "lottery heads (Behnke & Heafield)", "lossless_rate": 72, "within_rate": None, "model": "Transformer-big (NMT)", "data": "translation",
     "citation": "Behnke & Heafield (2020), EMNLP; 50-72% with no significant damage"},
]


def load_finetune(paths: Iterable[str]) -> pd.DataFrame:
    """One row per fine-tuning result file."""
    rows = []
    for path in paths:
        m = read_json(path)
        rows.append(
            {
                "method": m["method"],
                "selection": m.get("selection"),
                "rate": int(m["rate"]),
                "augmentation": m["augmentation"],
                "seed": int(m["seed"]),
                "unit": m.get("unit", "heads"),
                **{f"test_{k}": m["test"][k] for k in METRICS},
                **{f"valid_{k}": m["valid"][k] for k in METRICS},
                "train_seconds": m.get("train_seconds"),
                "inference_seconds": m["test"].get("inference_seconds"),
                "file": str(path),
            }
        )
    if not rows:
        raise ValueError("no fine-tuning results to report")
    return pd.DataFrame(rows)


def mean_ci(values: Iterable[float]) -> tuple[float, float, float]:
    """Mean and a 95% t-interval half-width (NaN with one value)."""
    v = np.asarray(list(values), dtype=float)
    if len(v) < 2:
        return float(v.mean()), math.nan, len(v)
    from scipy import stats

    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return float(v.mean()), float(half), len(v)


def aggregate(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Mean and 95% interval of the test metrics over seeds, per group; files joined."""
    out = []
    for key, group in frame.groupby(keys, dropna=False, sort=True):
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        for k in METRICS:
            mean, half, n = mean_ci(group[f"test_{k}"])
            row[f"test_{k}"] = mean
            row[f"test_{k}_ci95"] = half
        row["seeds"] = int(len(group))
        row["train_seconds"] = float(group["train_seconds"].mean())
        row["inference_seconds"] = float(group["inference_seconds"].mean())
        row["files"] = ";".join(sorted(group["file"]))
        out.append(row)
    return pd.DataFrame(out)


def reference_f1(frame: pd.DataFrame, augmentation: str = "none") -> tuple[float, str]:
    ref = frame[(frame["method"] == "unpruned") & (frame["augmentation"] == augmentation)]
    if ref.empty:
        raise ValueError(f"no unpruned reference with augmentation {augmentation!r}")
    return float(ref["test_f1"].mean()), ";".join(sorted(ref["file"]))


def table5(frame: pd.DataFrame, *, selection: str, loss_allocation: float, model: str, data: str) -> pd.DataFrame:
    """Per method (and augmentation): highest lossless rate and highest rate within the allocation."""
    ref_f1, ref_files = reference_f1(frame)
    pruned = frame[(frame["method"] != "unpruned") & (frame["selection"] == selection)]
    agg = aggregate(pruned, ["method", "augmentation", "unit", "rate"])
    rows = []
    tolerance = loss_allocation / 100.0
    for (method, aug, unit), group in agg.groupby(["method", "augmentation", "unit"], sort=True):
        group = group.sort_values("rate")
        lossless = group[group["test_f1"] >= ref_f1]
        within = group[group["test_f1"] >= ref_f1 - tolerance]
        best_l = lossless.iloc[-1] if len(lossless) else None
        best_w = within.iloc[-1] if len(within) else None
        rows.append(
            {
                "source": "measured",
                "method": method,
                "augmentation": aug,
                "unit": unit,
                "model": model,
                "data": data,
                "reference_f1": ref_f1,
                "lossless_rate": int(best_l["rate"]) if best_l is not None else None,
                "f1_at_lossless": float(best_l["test_f1"]) if best_l is not None else None,
                "within_rate": int(best_w["rate"]) if best_w is not None else None,
                "f1_at_within": float(best_w["test_f1"]) if best_w is not None else None,
                "loss_allocation_points": loss_allocation,
                "rates_tested": " ".join(str(int(r)) for r in group["rate"]),
                "seeds": int(group["seeds"].min()),
                "citation": "",
                "files": ";".join([ref_files] + list(group["files"])),
            }
        )
    for rep in REPORTED:
        rows.append(
            {
                "source": "reported",
                "method": rep["method"],
                "augmentation": "",
                "unit": "heads",
                "model": rep["model"],
                "data": rep["data"],
                "reference_f1": None,
                "lossless_rate": rep["lossless_rate"],
                "f1_at_lossless": None,
                "within_rate": rep["within_rate"],
                "f1_at_within": None,
                "loss_allocation_points": 1.0,
                "rates_tested": "",
                "seeds": None,
                "citation": rep["citation"],
                "files": "",
            }
        )
    out = pd.DataFrame(rows)
    for column in ("lossless_rate", "within_rate", "seeds"):
        out[column] = out[column].astype("Int64")
    return out


def table4(frame: pd.DataFrame, table2: pd.DataFrame, *, rate: int, selection: str, table2_file: str) -> pd.DataFrame:
    """Every compression method as the augmentation of GA at the reference rate."""
    ga = frame[(frame["method"] == "ga") & (frame["rate"] == rate) & (frame["selection"] == selection)]
    agg = aggregate(ga, ["augmentation"])
    labels = table2.set_index("method")
    agg["label_accuracy"] = [labels["accuracy"].get(a, np.nan) if a != "none" else np.nan for a in agg["augmentation"]]
    agg["label_f1"] = [labels["f1"].get(a, np.nan) if a != "none" else np.nan for a in agg["augmentation"]]
    agg.insert(0, "rate", rate)
    agg.insert(0, "method", "ga")
    agg["files"] = agg["files"] + ";" + table2_file
    return agg.sort_values("test_f1", ascending=False).reset_index(drop=True)


def table6(frame: pd.DataFrame, summaries: dict[str, dict], *, rate: int) -> pd.DataFrame:
    """Random vs kmeans lottery selection at each selection rate: GA at the reference rate, no augmentation."""
    ga = frame[(frame["method"] == "ga") & (frame["rate"] == rate) & (frame["augmentation"] == "none")]
    agg = aggregate(ga, ["selection"])
    agg["selector"] = agg["selection"].str.split("-").str[0]
    agg["selection_rate"] = agg["selection"].str.split("-").str[1].astype(float)
    fitness, sizes, files = [], [], []
    for sel in agg["selection"]:
        path = f"results/prune/ga/{sel}/{rate}/summary.json"
        summary = summaries.get(sel)
        fitness.append(summary["valid"]["f1"] if summary else np.nan)
        sizes.append(summary["lottery_size"] if summary else np.nan)
        files.append(path)
    agg["search_valid_f1"] = fitness
    agg["lottery_size"] = sizes
    agg["files"] = agg["files"] + ";" + pd.Series(files, index=agg.index)
    agg.insert(0, "rate", rate)
    cols = ["rate", "selector", "selection_rate", "lottery_size", "search_valid_f1"] + [c for c in agg.columns if c.startswith("test_")] + ["seeds", "files"]
    return agg.sort_values(["selection_rate", "selector"], ascending=[False, True])[cols].reset_index(drop=True)


def claims(frame: pd.DataFrame, t4: pd.DataFrame, t5: pd.DataFrame, t6: pd.DataFrame, *, selection: str, rate: int) -> pd.DataFrame:
    """The paper's claims, each with what was measured here and whether it held."""
    rows = []
    ref_f1, _ = reference_f1(frame)
    sel = frame[frame["selection"] == selection]
    ga = aggregate(sel[(sel["method"] == "ga") & (sel["augmentation"] == "none")], ["rate"]).set_index("rate")
    rnd = aggregate(sel[(sel["method"] == "random") & (sel["augmentation"] == "none")], ["rate"]).set_index("rate")
    common = sorted(set(ga.index) & set(rnd.index))
    if common:
        wins = [r for r in common if ga.loc[r, "test_f1"] > rnd.loc[r, "test_f1"]]
        rows.append({
            "claim": "GA beats random head pruning at every prune rate",
            "measured": "; ".join(f"{r}%: GA {ga.loc[r, 'test_f1']:.4f} vs random {rnd.loc[r, 'test_f1']:.4f}" for r in common),
            "held": len(wins) == len(common),
        })
    tested = set(sel.loc[sel["method"] == "ga", "rate"])
    measured = t5[t5["source"] == "measured"]
    for aug, claim_rate, column, text in (
        ("lda", 70, "lossless_rate", "GA with LDA augmentation is lossless at 70% of heads pruned"),
        ("lda", 90, "within_rate", "GA with LDA augmentation stays within 1 F1 point at 90% pruned"),
    ):
        row = measured[(measured["method"] == "ga") & (measured["augmentation"] == aug)]
        if row.empty:
            continue
        value = row[column].iloc[0]
        if claim_rate not in tested:
            rows.append({"claim": text, "measured": f"{claim_rate}% is not among the prune rates run", "held": "not tested"})
            continue
        rate_here = sel[(sel["method"] == "ga") & (sel["augmentation"] == aug) & (sel["rate"] == claim_rate)]
        f1_here = float(rate_here["test_f1"].mean()) if len(rate_here) else math.nan
        rows.append({
            "claim": text,
            "measured": f"highest such rate here: {value if pd.notna(value) else 'none'}; F1 at {claim_rate}% = {f1_here:.4f} vs unpruned {ref_f1:.4f}",
            "held": bool(pd.notna(value) and value >= claim_rate),
        })
    if not t6.empty:
        for srate in sorted(set(t6["selection_rate"]) & {1.0, 0.5}, reverse=True):
            part = t6[t6["selection_rate"] == srate].set_index("selector")
            if {"random", "kmeans"} <= set(part.index):
                k, r = part.loc["kmeans", "test_f1"], part.loc["random", "test_f1"]
                rows.append({
                    "claim": f"K-means lottery selection beats random selection at {srate:g}% of the train split",
                    "measured": f"GA at {rate}%: kmeans {k:.4f} vs random {r:.4f} test F1",
                    "held": bool(k > r),
                })
    if not t4.empty:
        ranked = t4[t4["augmentation"] != "none"].sort_values("test_f1", ascending=False).reset_index(drop=True)
        if "lda" in set(ranked["augmentation"]):
            position = int(ranked.index[ranked["augmentation"] == "lda"][0]) + 1
            rows.append({
                "claim": f"LDA is among the best compression methods for augmentation at {rate}% (top 3)",
                "measured": f"LDA ranks {position} of {len(ranked)}: " + ", ".join(f"{a} {f:.4f}" for a, f in zip(ranked["augmentation"], ranked["test_f1"])),
                "held": position <= 3,
            })
    return pd.DataFrame(rows, columns=["claim", "measured", "held"])


