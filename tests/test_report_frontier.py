"""The speed-quality frontier (report/frontier.py) from constructed predictions and timings
whose right answers are known."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lotteryprune.report import frontier, tables

N = 500
LABELS = (np.random.default_rng(0).random(N) < 0.65).astype(int)
SETTINGS = tables.Settings(
    metric="macro_f1",
    selection="random-5",
    reference_rate=70,
    loss_allocation=1.0,
    resamples=800,
    confidence=0.95,
    collapse=0.95,
    seed=0,
)


def _pred(accuracy, seed):
    rng = np.random.default_rng(seed)
    wrong = rng.choice(N, size=N - int(round(accuracy * N)), replace=False)
    pred = LABELS.copy()
    pred[wrong] = 1 - pred[wrong]
    return pred


def _cell(root, method, rate, accuracy, unit="heads", runs=3, aug="none"):
    sel = None if method == "unpruned" else "random-5"
    cell = root / method / str(sel) / str(rate) / aug
    cell.mkdir(parents=True)
    frames, records = [], []
    base = _pred(accuracy, 1000 + rate)  # runs agree mostly, as seeds of one mask do
    for i in range(runs):
        pred = base.copy()
        flip = np.random.default_rng([sum(map(ord, method)), rate, i]).choice(N, 5, replace=False)
        pred[flip] = LABELS[flip]  # a few more right per run: small seed spread
        frames.append(
            pd.DataFrame(
                {
                    "search_seed": i,
                    "finetune_seed": i,
                    "id": [f"t{k}" for k in range(N)],
                    "label": LABELS,
                    "pred": pred,
                    "p_positive": pred * 0.9,
                }
            )
        )
        records.append({"search_seed": i, "finetune_seed": i, "test": {}, "train_seconds": 1.0})
    pd.concat(frames).to_parquet(cell / "predictions.parquet")
    (cell / "metrics.json").write_text(
        json.dumps(
            {"method": method, "selection": sel, "rate": rate, "augmentation": aug, "unit": unit, "runs": records}
        )
    )
    return str(cell / "metrics.json")


def _bench(method, speed_by_rate, unit):
    rng = np.random.default_rng(len(method))
    entries = []
    for rate, speed in speed_by_rate.items():
        for seed in range(3):
            base = 100 + rng.normal(0, 1, 12)
            pruned = base / speed * (1 + rng.normal(0, 0.01, 12))
            entries.append(
                {
                    "rate": rate,
                    "seed": seed,
                    "unit": unit,
                    "unpruned_ms": base.tolist(),
                    "pruned_ms": pruned.tolist(),
                    "measured_speedup": float(np.median(base) / np.median(pruned)),
                    "flop_speedup": speed * 1.2,
                    "pruned": {"params": 1000, "latency_s": 0.1},
                    "unpruned": {"params": 2000},
                }
            )
    return {"method": method, "file": f"results/bench/{method}/random-5.json", "entries": entries}


@pytest.fixture()
def built(tmp_path):
    paths = [_cell(tmp_path, "unpruned", 0, 0.86)]
    accs = {
        "ga_ffn": {50: 0.86, 70: 0.855, 90: 0.70},
        "fisher": {50: 0.86, 70: 0.80, 90: 0.60},
        "ga": {50: 0.86, 70: 0.85, 90: 0.84},
    }
    units = {"ga_ffn": "flops", "fisher": "flops", "ga": "heads"}
    speeds = {
        "ga_ffn": {50: 1.7, 70: 2.6, 90: 5.0},
        "fisher": {50: 1.8, 70: 2.7, 90: 5.2},
        "ga": {50: 1.1, 70: 1.25, 90: 1.5},
    }
    for method, by_rate in accs.items():
        for rate, acc in by_rate.items():
            paths.append(_cell(tmp_path, method, rate, acc, units[method]))
    bench = {m: _bench(m, speeds[m], units[m]) for m in speeds}
    return tables.load_results(paths, SETTINGS), bench


def test_speedup_interval_covers_the_measured_ratio(built):
    _, bench = built
    sp = frontier.speedups(bench, "ga_ffn", resamples=500)
    for rate, expect in {50: 1.7, 70: 2.6, 90: 5.0}.items():
        assert sp[rate]["speedup_low"] <= sp[rate]["speedup"] <= sp[rate]["speedup_high"]
        assert sp[rate]["speedup"] == pytest.approx(expect, rel=0.03) and sp[rate]["masks"] == 3
    assert frontier.speedups(bench, "nothing") == {}


def test_points_table_and_head_to_head(built, tmp_path):
    results, bench = built
    pts = frontier.points(results, bench)
    ref = pts[pts["method"] == "unpruned"].iloc[0]
    assert ref["speedup"] == 1.0 and ref["ci_low"] <= ref["value"] <= ref["ci_high"]
    row = pts[(pts["method"] == "ga_ffn") & (pts["rate"] == 70)].iloc[0]
    assert row["unit"] == "flops" and row["lossless"] and row["vs_reference_low"] <= 0 <= row["vs_reference_high"]
    assert not pts[(pts["method"] == "fisher") & (pts["rate"] == 70)].iloc[0]["lossless"]
    # the same decision as table5's (tables.passes against the reference)
    for _, r in pts[pts["method"] != "unpruned"].iterrows():
        cell = results.get(r["method"], "random-5", r["rate"], "none")
        assert r["lossless"] == tables.passes(results, cell, results.reference(), 0.0)[0]
        assert r["within"] == tables.passes(results, cell, results.reference(), -0.01)[0]

    table = frontier.frontier_table(pts, 1.0).set_index("method")
    # ga_ffn: lossless at 50 and 70 (not 90): its speed-up at no loss is the one measured at 70
    assert table.loc["ga_ffn", "lossless_rate"] == 70
    assert (
        table.loc["ga_ffn", "lossless_speedup"]
        == pts[(pts["method"] == "ga_ffn") & (pts["rate"] == 70)]["speedup"].iloc[0]
    )
    assert table.loc["fisher", "lossless_rate"] == 50
    # ga at 90 (2 points of accuracy below) is not significantly below the reference minus a point
    assert table.loc["ga", "within_rate"] == 90
    assert table.loc["ga", "within_speedup"] == pytest.approx(1.5, rel=0.03)

    vs = frontier.versus(results, bench)
    assert set(vs["a"]) == {"ga_ffn"}  # ga vs fisher_heads: fisher_heads did not run
    by_rate = vs.set_index("rate")
    assert by_rate.loc[90, "verdict"] == "held" and by_rate.loc[90, "better"] == "ga_ffn"
    assert by_rate.loc[70, "verdict"] == "held" and by_rate.loc[50, "verdict"] == "inconclusive"
    assert by_rate.loc[90, "speedup_b"] == pytest.approx(5.2, rel=0.03)

    out = frontier.figure(pts, tmp_path / "frontier.png", metric="macro_f1", allocation_points=1.0)
    assert all((tmp_path / p).exists() for p in ["frontier.png", "frontier.pdf"]) and len(out) == 2


def test_report_without_the_new_methods(tmp_path):
    """The frontier works for whatever methods ran (the default config has none of issue #18's)."""
    paths = [_cell(tmp_path, "unpruned", 0, 0.86), _cell(tmp_path, "ga", 50, 0.86), _cell(tmp_path, "ga", 70, 0.8)]
    bench_file = tmp_path / "ga.json"
    bench_file.write_text(json.dumps(_bench("ga", {50: 1.1, 70: 1.3}, "heads")))
    out = frontier.report(paths, [str(bench_file)], SETTINGS)
    assert out["versus"].empty and list(out["table"]["method"]) == ["ga"]
    assert out["table"]["lossless_rate"].iloc[0] == 50
    frontier.figure(out["points"], tmp_path / "f.png", metric="macro_f1", allocation_points=1.0)


def test_an_augmented_series_is_measured_against_the_unpruned_model_fine_tuned_the_same_way(tmp_path):
    """With an augmentation, "lossless" is against the unpruned model fine-tuned with it and
    against the unaugmented one. pca here lifts the unpruned model, so a pruned model as good
    as the unaugmented reference is still a loss under its own recipe; lda hurts it, so a
    pruned model as good as the lda reference is still a loss against the model one would
    otherwise deploy."""
    paths = [
        _cell(tmp_path, "unpruned", 0, 0.80),
        _cell(tmp_path, "unpruned", 0, 0.86, aug="pca"),
        _cell(tmp_path, "unpruned", 0, 0.74, aug="lda"),
    ]
    for method in ("ga_ffn", "fisher"):
        paths.append(_cell(tmp_path, method, 70, 0.78, "flops"))
        paths.append(_cell(tmp_path, method, 70, 0.80 if method == "ga_ffn" else 0.70, "flops", aug="pca"))
    paths.append(_cell(tmp_path, "ga_ffn", 70, 0.74, "flops", aug="lda"))
    paths.append(_cell(tmp_path, "ga_ffn", 50, 0.86, "flops", aug="pca"))
    bench = {m: _bench(m, {50: 1.7, 70: 2.6}, "flops") for m in ("ga_ffn", "fisher")}
    results = tables.load_results(paths, SETTINGS)
    pts = frontier.points(results, bench).set_index(["method", "augmentation", "rate"])

    aug_ref = pts.loc[("unpruned", "pca", 0)]  # the augmentation's own effect on the unpruned model
    assert aug_ref["reference"] == "unpruned/none" and aug_ref["vs_reference_low"] > 0
    assert pts.loc[("unpruned", "lda", 0)]["vs_reference_high"] < 0

    def cmp(aug, ref):
        return results.compare(results.get("ga_ffn", "random-5", 70, aug), results.reference(ref))

    row = pts.loc[("ga_ffn", "pca", 70)]
    assert row["reference"] == "unpruned/pca unpruned/none"
    assert row["vs_reference"] == pytest.approx(cmp("pca", "pca").difference)
    assert row["vs_unaugmented"] == pytest.approx(cmp("pca", "none").difference)
    assert cmp("pca", "none").high >= 0 and not row["lossless"]  # as good as unpruned/none, not unpruned/pca
    row = pts.loc[("ga_ffn", "lda", 70)]
    assert cmp("lda", "lda").high >= 0 and not row["lossless"]  # as good as unpruned/lda, not unpruned/none
    assert pts.loc[("ga_ffn", "pca", 50)]["lossless"]  # better than both
    assert pts.loc[("ga_ffn", "none", 70)]["reference"] == "unpruned/none"

    table = frontier.frontier_table(pts.reset_index(), 1.0).set_index(["method", "augmentation"])
    assert set(table.index) == {("ga_ffn", a) for a in ("none", "pca", "lda")} | {("fisher", "none"), ("fisher", "pca")}
    assert table.loc[("ga_ffn", "pca"), "lossless_rate"] == 50
    vs = frontier.versus(results, bench).set_index(["augmentation", "rate"])
    assert list(vs.index) == [("none", 70), ("pca", 70)] and vs.loc[("pca", 70), "better"] == "ga_ffn"
    frontier.figure(pts.reset_index(), tmp_path / "f.png", metric="macro_f1", allocation_points=1.0)

    # a series fine-tuned with an augmentation the unpruned model was not: named, not skipped
    missing = [p for p in paths if "unpruned/None/0/pca" not in p]
    with pytest.raises(ValueError, match="unpruned/pca/metrics.json"):
        frontier.points(tables.load_results(missing, SETTINGS), bench)
