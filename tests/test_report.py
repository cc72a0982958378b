"""Tables and claims from synthetic result files: rates, intervals, traceability."""

import json
import math

import pandas as pd
import pytest

from lotteryprune import report


def _write(tmp_path, method, rate, aug, seed, f1, sel="random-5"):
    path = tmp_path / f"{method}-{sel}-{rate}-{aug}-{seed}.json"
    metrics = {"accuracy": f1, "f1": f1, "mcc": f1 - 0.5, "inference_seconds": 1.0}
    path.write_text(json.dumps({
        "method": method, "selection": None if method == "unpruned" else sel, "rate": rate, "augmentation": aug,
        "seed": seed, "unit": "heads", "test": metrics, "valid": metrics, "train_seconds": 10.0 - rate / 20,
    }))
    return str(path)


@pytest.fixture
def frame(tmp_path):
    paths = [_write(tmp_path, "unpruned", 0, "none", s, 0.80 + 0.002 * s) for s in (0, 1)]
    ga = {30: 0.83, 50: 0.81, 70: 0.805, 90: 0.795}
    rnd = {30: 0.80, 50: 0.78, 70: 0.75, 90: 0.70}
    for rate in ga:
        for s in (0, 1):
            paths.append(_write(tmp_path, "ga", rate, "none", s, ga[rate] - 0.001 * s))
            paths.append(_write(tmp_path, "ga", rate, "lda", s, ga[rate] + 0.01))
            paths.append(_write(tmp_path, "random", rate, "none", s, rnd[rate]))
    for sel, f1 in (("random-1", 0.78), ("kmeans-1", 0.79)):
        paths.append(_write(tmp_path, "ga", 70, "none", 0, f1, sel=sel))
    for aug, f1 in (("unhappy", 0.79), ("pca", 0.80)):
        paths.append(_write(tmp_path, "ga", 70, aug, 0, f1))
    return report.load_finetune(paths)


def test_table5_lossless_and_within_one_point(frame):
    t5 = report.table5(frame, selection="random-5", loss_allocation=1.0, model="m", data="d")
    measured = t5[t5["source"] == "measured"].set_index(["method", "augmentation"])
    ref = (0.80 + 0.802) / 2
    assert measured.loc[("ga", "none"), "reference_f1"] == pytest.approx(ref)
    assert measured.loc[("ga", "none"), "lossless_rate"] == 70  # 0.8045 >= 0.801
    assert measured.loc[("ga", "none"), "within_rate"] == 90  # 0.7945 >= 0.791
    assert measured.loc[("ga", "lda"), "lossless_rate"] == 90
    assert pd.isna(measured.loc[("random", "none"), "lossless_rate"])
    assert measured.loc[("random", "none"), "within_rate"] == 30
    # every measured row names the files it came from, and they exist in the frame
    for files in measured["files"]:
        assert set(files.split(";")) <= set(frame["file"])
    reported = t5[t5["source"] == "reported"]
    assert {"lossless_rate", "within_rate", "citation"} <= set(reported.columns)
    assert (reported["citation"] != "").all() and (reported["files"] == "").all()


def test_aggregate_mean_and_interval(frame):
    agg = report.aggregate(frame[(frame["method"] == "ga") & (frame["augmentation"] == "none") & (frame["selection"] == "random-5")], ["rate"])
    row = agg.set_index("rate").loc[30]
    assert row["test_f1"] == pytest.approx(0.8295) and row["seeds"] == 2
    assert row["test_f1_ci95"] > 0 and not math.isnan(row["test_f1_ci95"])


def test_table4_table6_and_claims(frame, tmp_path):
    table2 = pd.DataFrame({"method": ["lda", "unhappy", "pca"], "accuracy": [0.7, 0.6, 0.65], "f1": [0.7, 0.6, 0.65]})
    t4 = report.table4(frame, table2, rate=70, selection="random-5", table2_file="results/table2.csv")
    assert t4["augmentation"].tolist()[0] == "lda"
    assert set(t4["augmentation"]) == {"none", "lda", "unhappy", "pca"}
    summaries = {s: {"valid": {"f1": 0.7}, "lottery_size": 30} for s in ("random-1", "kmeans-1", "random-5")}
    t6 = report.table6(frame, summaries, rate=70)
    assert set(t6["selector"]) == {"random", "kmeans"}
    t5 = report.table5(frame, selection="random-5", loss_allocation=1.0, model="m", data="d")
    claims = report.claims(frame, t4, t5, t6, selection="random-5", rate=70).set_index("claim")
    assert claims.loc["GA beats random head pruning at every prune rate", "held"]
    assert claims.loc["GA with LDA augmentation is lossless at 70% of heads pruned", "held"]
    assert claims.loc["K-means lottery selection beats random selection at 1% of the train split", "held"]
    assert bool(claims.filter(like="LDA is among", axis=0)["held"].iloc[0])


def test_no_reference_is_a_clear_error(frame):
    with pytest.raises(ValueError, match="unpruned reference"):
        report.reference_f1(frame[frame["method"] != "unpruned"])
