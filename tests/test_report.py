"""Tables and claims from constructed predictions whose right answers are known: the paired
bootstrap, contiguous lossless rates, collapse, random's distribution over draws."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from lotteryprune.report import stats, tables

N = 400
RNG = np.random.default_rng(0)
LABELS = (RNG.random(N) < 0.6).astype(int)  # 60% positive, like the default data's 69%
SETTINGS = tables.Settings(
    metric="macro_f1",
    selection="random-5",
    reference_rate=70,
    loss_allocation=1.0,
    resamples=1000,
    confidence=0.95,
    collapse=0.95,
    seed=0,
)


def predictions(accuracy: float, seed: int) -> np.ndarray:
    """Predictions right on exactly round(accuracy * N) examples, the rest flipped."""
    rng = np.random.default_rng(seed)
    wrong = rng.choice(N, size=N - int(round(accuracy * N)), replace=False)
    pred = LABELS.copy()
    pred[wrong] = 1 - pred[wrong]
    return pred


def write_cell(root, method, rate, augmentation, runs, selection="random-5"):
    """A finetune cell as the finetune rule writes it: metrics.json + predictions.parquet."""
    cell = root / method / str(selection) / str(rate) / augmentation
    cell.mkdir(parents=True)
    frames, records = [], []
    for i, pred in enumerate(runs):
        frames.append(
            pd.DataFrame(
                {
                    "search_seed": i,
                    "finetune_seed": i % 3,
                    "id": [f"t{k}" for k in range(N)],
                    "label": LABELS,
                    "pred": pred,
                    "p_positive": pred * 0.9,
                }
            )
        )
        records.append({"search_seed": i, "finetune_seed": i % 3, "test": {}, "train_seconds": 1.0})
    pd.concat(frames).to_parquet(cell / "predictions.parquet")
    (cell / "metrics.json").write_text(
        json.dumps(
            {
                "method": method,
                "selection": None if method == "unpruned" else selection,
                "rate": rate,
                "augmentation": augmentation,
                "unit": "heads",
                "runs": records,
            }
        )
    )
    return str(cell / "metrics.json")


# --------------------------------------------------------------------------- the statistics


def test_metrics_from_counts_match_sklearn():
    rng = np.random.default_rng(1)
    for _ in range(300):
        n = int(rng.integers(4, 50))
        y, p = rng.integers(0, 2, n), rng.integers(0, 2, n)
        if rng.random() < 0.2:
            p[:] = 1
        assert stats.metric(y, p, "accuracy") == pytest.approx(accuracy_score(y, p))
        assert stats.metric(y, p, "f1") == pytest.approx(f1_score(y, p, zero_division=0))
        assert stats.metric(y, p, "macro_f1") == pytest.approx(f1_score(y, p, average="macro", zero_division=0))
        assert stats.metric(y, p, "mcc") == pytest.approx(matthews_corrcoef(y, p), abs=1e-12)


def test_identical_predictions_are_inconclusive():
    pred = predictions(0.8, 1)
    c = stats.paired_bootstrap(pred, pred, LABELS, "macro_f1", resamples=500)
    assert c.difference == 0 and c.low == 0 and c.high == 0
    assert c.verdict() == "inconclusive"


def test_one_side_right_on_many_more_examples_is_held_and_the_reverse_not_held():
    good, bad = predictions(0.9, 1), predictions(0.6, 2)
    c = stats.paired_bootstrap(good, bad, LABELS, "accuracy", resamples=1000)
    assert c.difference == pytest.approx(0.3)  # 360 vs 240 right out of 400
    assert c.low > 0.2 and c.verdict() == "held"
    assert stats.paired_bootstrap(bad, good, LABELS, "accuracy", resamples=1000).verdict() == "not held"
    # the same comparison against a margin it cannot clear: inconclusive or not held
    assert stats.paired_bootstrap(good, bad, LABELS, "accuracy", margin=0.3, resamples=1000).verdict() == "inconclusive"


def test_interval_width_matches_the_normal_approximation():
    """For accuracy and one run a side, the paired difference is a mean of d_i = right_a - right_b;
    its 95% interval is about 1.96 sd(d) / sqrt(n) either side (computed here without the bootstrap)."""
    a, b = predictions(0.85, 3), predictions(0.80, 4)
    d = (a == LABELS).astype(float) - (b == LABELS).astype(float)
    half = 1.96 * d.std(ddof=1) / np.sqrt(N)
    c = stats.paired_bootstrap(a, b, LABELS, "accuracy", resamples=4000, seed=5)
    assert (c.high - c.low) / 2 == pytest.approx(half, rel=0.15)
    assert (c.low + c.high) / 2 == pytest.approx(d.mean(), abs=0.01)


def test_runs_are_resampled_so_seed_spread_widens_the_interval():
    """Two runs that disagree a lot (one right on 95%, one on 65%) against one steady side:
    resampling the runs makes the interval wider than resampling the examples alone."""
    spread = np.stack([predictions(0.95, 5), predictions(0.65, 6)])
    steady = np.stack([predictions(0.80, 7), predictions(0.80, 8)])
    with_runs = stats.paired_bootstrap(spread, steady, LABELS, "accuracy", resamples=2000, seed=1)
    examples_only = stats.paired_bootstrap(
        spread, steady, LABELS, "accuracy", resamples=2000, seed=1, resample_runs=False
    )
    assert (with_runs.high - with_runs.low) > 2 * (examples_only.high - examples_only.low)
    assert with_runs.verdict() == "inconclusive"


def test_collapse_detection():
    assert stats.collapsed(np.r_[np.ones(96), np.zeros(4)], 0.95)
    assert stats.collapsed(np.r_[np.zeros(95), np.ones(5)], 0.95)
    assert not stats.collapsed(np.r_[np.ones(94), np.zeros(6)], 0.95)


def test_highest_contiguous_rate():
    assert tables.highest_contiguous([50, 70, 90], {50: True, 70: False, 90: True}) == 50
    assert tables.highest_contiguous([50, 70, 90], {50: True, 70: True, 90: True}) == 90
    assert tables.highest_contiguous([90, 50, 70], {50: False, 70: True, 90: True}) is None


# --------------------------------------------------------------------------- tables


@pytest.fixture
def results(tmp_path):
    ref = [predictions(0.88, 10 + s) for s in range(3)]
    paths = [write_cell(tmp_path, "unpruned", 0, "none", ref)]
    paths.append(write_cell(tmp_path, "unpruned", 0, "lda", [predictions(0.90, 20 + s) for s in range(3)]))
    # GA: lossless at 50 (same accuracy), clearly worse at 70 (0.70), equal again at 90: the
    # highest *contiguous* lossless rate is 50, although 90 passes on its own
    ga = {50: 0.88, 70: 0.70, 90: 0.88}
    for rate, acc in ga.items():
        paths.append(write_cell(tmp_path, "ga", rate, "none", [predictions(acc, 100 * rate + s) for s in range(3)]))
    paths.append(write_cell(tmp_path, "ga", 70, "lda", [predictions(0.95, 300 + s) for s in range(3)]))
    # random: five draws, 70% worse than GA's 50% cell
    for rate in (50, 70, 90):
        draws = [predictions(acc, 1000 * rate + s) for s, acc in enumerate((0.70, 0.72, 0.74, 0.76, 0.78))]
        paths.append(write_cell(tmp_path, "random", rate, "none", draws))
    # a collapsed method: answers "positive" for everything
    paths.append(write_cell(tmp_path, "sep", 50, "none", [np.ones(N, int)] * 3))
    return tables.load_results(paths, SETTINGS)


def test_table5_contiguous_lossless_rate_and_collapse(results):
    t5 = tables.table5(results, model="m", data="d")
    ga = t5[(t5["method"] == "ga") & (t5["augmentation"] == "none")].iloc[0]
    assert ga["lossless_rate"] == 50  # 90 passes alone, but 70 fails
    assert ga["within_rate"] == 50
    assert ga["rates_tested"] == "50 70 90" and ga["runs"] == "50%:3 70%:3 90%:3" and ga["test_n"] == N
    sep = t5[t5["method"] == "sep"].iloc[0]
    assert pd.isna(sep["lossless_rate"]) and sep["collapsed"] == "50%:3"
    # 69.2%..: the all-positive model's macro-F1 is low, but collapse alone would already exclude it
    reported = t5[t5["source"] == "reported"]
    assert len(reported) == len(tables.REPORTED) and reported["files"].eq("").all()
    assert all(f.endswith("metrics.json") for f in ga["files"].split(";"))


def test_table5_random_is_a_distribution_over_its_draws(results):
    t5 = tables.table5(results, model="m", data="d")
    row = t5[t5["method"] == "random"].iloc[0]
    assert row["runs"] == "50%:5 70%:5 90%:5"
    values = [
        stats.metric(LABELS, predictions(acc, 50000 + s), "macro_f1")
        for s, acc in enumerate((0.70, 0.72, 0.74, 0.76, 0.78))
    ]
    part = row["per_rate"].split(";")[0]
    assert f"mean {np.mean(values):.4f}" in part and f"sd {np.std(values, ddof=1):.4f}" in part
    assert f"best {max(values):.4f}" in part and "(n=5)" in part


def test_claims_verdicts(results):
    claims = tables.claims(results, rates=[50, 70, 90]).set_index("claim")
    assert claims.loc["GA beats random head pruning at 50%", "verdict"] == "held"  # 0.88 vs 0.70-0.78
    assert claims.loc["GA beats random head pruning at 70%", "verdict"] == "inconclusive"  # 0.70 vs 0.70-0.78
    assert claims.loc["GA beats random head pruning at every prune rate", "verdict"] == "inconclusive"
    lossless = claims.loc["GA with LDA augmentation is lossless at 70% of heads pruned"]
    assert lossless["verdict"] == "held" and lossless["runs_a"] == 3 and lossless["test_n"] == N
    assert lossless["ci_low"] > 0 and lossless["difference"] > 0
    assert claims.loc["GA with LDA augmentation stays within 1 point(s) at 90% pruned", "verdict"] == "not tested"
    assert (
        claims.loc["K-means lottery selection beats random selection at 1% of the train split", "verdict"]
        == "not tested"
    )
    assert set(claims["verdict"]) <= {"held", "not held", "inconclusive", "not tested", "not held (collapsed runs)"}


def test_cells_must_share_their_test_examples(tmp_path):
    a = write_cell(tmp_path, "unpruned", 0, "none", [predictions(0.9, 1)])
    b = write_cell(tmp_path, "ga", 50, "none", [predictions(0.9, 2)])
    frame = pd.read_parquet(tmp_path / "ga" / "random-5" / "50" / "none" / "predictions.parquet")
    frame["id"] = frame["id"].str.replace("t1", "x1")
    frame.to_parquet(tmp_path / "ga" / "random-5" / "50" / "none" / "predictions.parquet")
    with pytest.raises(ValueError, match="differ"):
        tables.load_results([a, b], SETTINGS)


def test_no_reference_is_a_clear_error(tmp_path):
    paths = [write_cell(tmp_path, "ga", 50, "none", [predictions(0.9, 1)])]
    with pytest.raises(ValueError, match="no unpruned reference"):
        tables.table5(tables.load_results(paths, SETTINGS), model="m", data="d")
