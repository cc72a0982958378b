"""Lottery sample selection (random, K-means nearest-to-centre), the task builder, and the
selection figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lotteryprune import select
from lotteryprune.prune.task import build_task, lottery_rows, valid_subset


def test_format_and_parse_rates():
    assert [select.format_rate(r) for r in (5, 1, 0.5, 5.0, "0.5", 0.25)] == ["5", "1", "0.5", "5", "0.5", "0.25"]
    assert select.sel_name("kmeans", 0.5) == "kmeans-0.5"
    assert select.parse_sel("random-5") == ("random", 5.0)
    with pytest.raises(ValueError, match="random-5"):
        select.parse_sel("dbscan-5")


def test_n_samples():
    assert select.n_samples(5, 2937) == 147
    assert select.n_samples(0.5, 2937) == 15
    assert select.n_samples(0.5, 100) == 2  # never fewer than 2
    assert select.n_samples(100, 10) == 10


def test_random_selection_is_seeded_and_distinct():
    a = select.select_random(1000, 50, seed=3)
    assert len(set(a.tolist())) == 50
    assert (a == select.select_random(1000, 50, seed=3)).all()
    assert not (a == select.select_random(1000, 50, seed=4)).all()


def blobs(n_centres=12, per=40, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_centres, dim)) * 10
    X = np.concatenate([c + rng.normal(size=(per, dim)) for c in centres]).astype(np.float32)
    return X, np.repeat(np.arange(n_centres), per)


def test_kmeans_picks_one_distinct_sample_per_blob_nearest_its_centre():
    X, blob = blobs()
    rows = select.select_kmeans(X, 12, seed=0)
    assert len(rows) == len(set(rows.tolist())) == 12
    assert sorted(blob[rows].tolist()) == list(range(12))  # one representative per blob
    # each pick is the sample nearest its blob's mean (K-means recovers the blobs)
    for r in rows:
        members = np.flatnonzero(blob == blob[r])
        mean = X[members].mean(0)
        assert r == members[np.argmin(((X[members] - mean) ** 2).sum(1))]
    assert (rows == select.select_kmeans(X, 12, seed=0)).all()


def test_nearest_distinct_resolves_shared_nearest_samples():
    X = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 0.0], [9.0, 9.0]], dtype=np.float32)
    centres = np.array([[0.1, 0.0], [0.0, 0.0], [0.2, 0.0]], dtype=np.float32)  # all nearest to row 0
    chosen = select.nearest_distinct(X, centres, k=1)  # k=1 forces the fallback to all rows
    assert chosen[1] == 0  # the closest claim wins
    assert sorted(chosen.tolist()) == [0, 1, 2]  # the others move on to the next nearest unused
    assert len(set(chosen.tolist())) == 3


def test_kmeans_with_minibatch(monkeypatch):
    monkeypatch.setattr(select, "FULL_KMEANS_LIMIT", 10)
    X, blob = blobs(n_centres=8, per=30)
    rows = select.select_kmeans(X, 40, seed=1)
    assert len(set(rows.tolist())) == 40
    assert set(blob[rows].tolist()) == set(range(8))


def test_select_record_is_label_blind_and_reports_balance():
    X, blob = blobs(n_centres=6, per=20)
    ids = [f"t{i}" for i in range(len(X))]
    labels = (blob % 2).tolist()
    rec = select.select("kmeans", 5, ids, labels, seed=0, embeddings=X)
    assert rec["n"] == 6 == len(set(rec["ids"]))
    assert set(rec["ids"]) <= set(ids)
    assert sum(rec["class_balance"].values()) == 6
    assert {"selector", "rate", "seed", "seconds", "n_train"} <= set(rec)
    rnd = select.select("random", 10, ids, labels, seed=0)
    assert rnd["n"] == 12
    with pytest.raises(ValueError, match="embeddings"):
        select.select("kmeans", 5, ids, labels, seed=0)


def split_frame(n_train=40, n_valid=30):
    rows = []
    for i in range(n_train):
        rows.append({"id": f"tr{i}", "text": f"train text {i}", "label": i % 2, "source": "s", "split": "train"})
    for i in range(n_valid):
        rows.append(
            {"id": f"va{i}", "text": f"valid text {i}", "label": int(i % 3 == 0), "source": "s", "split": "valid"}
        )
    rows.append({"id": "te0", "text": "test", "label": 1, "source": "s", "split": "test"})
    return pd.DataFrame(rows)


TRAIN = {"epochs": 2, "lr": 1e-4, "batch_size": 8, "warmup_ratio": 0.1, "weight_decay": 0.01, "max_grad_norm": 1.0}


def _task(df, ids, rate=70, seed=13, **kw):
    args = dict(
        model_dir="m",
        rate=rate,
        seed=seed,
        params={"population": 6},
        train=TRAIN,
        valid_size=12,
        metric="macro_f1",
        max_length=48,
        dtype="float32",
    )
    return build_task(df, ids, **{**args, **kw})


def test_build_task(tmp_path):
    df = split_frame()
    task = _task(df, ["tr3", "tr1", "tr8"], workdir=tmp_path / "work", threads=2)
    assert task.train_texts == ["train text 3", "train text 1", "train text 8"]
    assert task.train_labels == [1, 1, 0]
    assert task.rate == 70
    assert len(task.valid_texts) == 12 and all(t.startswith("valid") for t in task.valid_texts)
    assert sum(task.valid_labels) == 4  # stratified: a third of the valid rows are positive
    assert task.train_cfg.max_length == 48 and task.train_cfg.seed == 13 and task.train_cfg.epochs == 2
    assert task.params == {"population": 6} and task.metric == "macro_f1"
    assert task.seed == 13 and task.threads == 2 and (tmp_path / "work").is_dir()
    assert _task(df, ["tr3", "tr1", "tr8"]).valid_texts == task.valid_texts  # seeded
    assert _task(df, ["tr3", "tr1", "tr8"], seed=14).valid_texts != task.valid_texts  # by the search seed
    with pytest.raises(ValueError, match="percent"):
        _task(df, ["tr1"], rate=0.7 - 0.7)
    with pytest.raises(KeyError, match="prune.train: missing keys \\['lr'\\]"):
        _task(df, ["tr1"], train={k: v for k, v in TRAIN.items() if k != "lr"})


def test_lottery_rows_name_missing_ids():
    with pytest.raises(KeyError, match="va1"):
        lottery_rows(split_frame(), ["tr1", "va1"])


def test_valid_subset_none_is_all():
    df = split_frame()
    assert len(valid_subset(df, None, 0)) == 30
    assert len(valid_subset(df, 1000, 0)) == 30


def test_plot_selection(tmp_path):
    rng = np.random.default_rng(0)
    coords = rng.normal(size=(200, 2))
    labels = rng.integers(0, 2, 200)
    picks = {"random-5": [1, 2, 3], "kmeans-5": [4, 5, 6], "random-1": [7], "kmeans-1": [8]}
    out = select.plot_selection(coords, labels, picks, tmp_path / "selection_umap.png")
    assert [p.rsplit(".", 1)[1] for p in out] == ["png", "pdf"]
    for p in out:
        data = open(p, "rb").read()
        assert len(data) > 1000
    assert open(out[0], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
