"""Label compression on planted score matrices: recovery, orientation from the lists, no labels."""

import numpy as np
import pandas as pd
import pytest
import torch

from lotteryprune import compress
from lotteryprune.compress import simple
from lotteryprune.zeroshot import Emotions, load_emotions

FILLER = "day time people thing work home week night game music phone movie food city year".split()
FAST = {"ae": {"hidden": 8, "epochs": 15, "lr": 0.01, "batch_size": 64},
        "vae": {"hidden": 8, "epochs": 15, "lr": 0.01, "batch_size": 64, "beta": 1.0},
        "lda": {"num_topics": [2, 4], "passes": 5, "min_count": 2}, "boundary": 0.5}


@pytest.fixture(scope="module")
def emotions():
    return load_emotions("config/emotions.yaml")


def planted(emotions, n=600, seed=0, pos_rate=0.6):
    """Scores driven by a hidden sentiment: positive emotions up and negative down for y=1."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < pos_rate).astype(int)
    a = np.where(y == 1, 1.0, -1.0) + rng.normal(0, 0.35, n)
    bias = rng.normal(0, 0.3, len(emotions.columns))
    load = np.array([1.0] * len(emotions.positive) + [-1.0] * len(emotions.negative) + [0.6, -0.6])
    logits = 2.0 * a[:, None] * load[None, :] * rng.uniform(0.5, 1.5, len(load)) + bias + rng.normal(0, 0.5, (n, len(load)))
    scores = 1 / (1 + np.exp(-logits))
    frame = pd.DataFrame(scores.astype(np.float32), columns=emotions.columns)
    frame.insert(0, "id", [f"r{i}" for i in range(n)])
    frame.insert(1, "text", [" ".join(rng.choice(FILLER, 6)) for _ in range(n)])
    frame["label"] = y
    frame["split"] = rng.choice(["train", "valid", "test"], n, p=[0.6, 0.2, 0.2])
    return frame


def split_frames(frame):
    return frame[frame.split == "train"], frame[frame.split == "valid"]


@pytest.mark.parametrize("method", compress.METHODS)
def test_planted_structure_is_recovered(method, emotions):
    frame = planted(emotions)
    extra = planted(emotions, n=100, seed=1).drop(columns=["label", "split"])
    labels, metrics = compress.compress(method, frame, extra, emotions, FAST, seed=3)
    assert metrics["test"]["accuracy"] > 0.9, metrics["test"]
    assert list(labels.columns) == ["id", "dataset", "score", "label"]
    assert (labels["dataset"] == "labelled").sum() == len(frame) and (labels["dataset"] == "extra").sum() == 100
    assert labels["score"].between(0, 1).all() and set(labels["label"].unique()) <= {0, 1}
    assert ((labels["score"] > 0.5).astype(int) == labels["label"]).all()
    ex = labels[labels.dataset == "extra"]
    y_extra = planted(emotions, n=100, seed=1)["label"].to_numpy()
    assert (ex["label"].to_numpy() == y_extra).mean() > 0.85  # extra texts labelled by the same model


@pytest.mark.parametrize("method", ["pca", "ae", "vae", "lda"])
def test_orientation_comes_from_the_emotion_lists(method, emotions):
    frame = planted(emotions)
    train, valid = split_frames(frame)
    fitted = compress.fit(method, train, valid, emotions, FAST.get(method, {}), seed=3)
    score = fitted.predict(frame)
    affect = compress.affect_index(frame, emotions)
    assert np.corrcoef(score, affect)[0, 1] > 0.5  # high scores where positive emotions score high
    # swap the lists: the same scores now read the other way round
    swapped = Emotions(emotions.negative, emotions.positive)
    fitted_sw = compress.fit(method, train, valid, swapped, FAST.get(method, {}), seed=3)
    agree = ((fitted_sw.predict(frame) > 0.5) == (score > 0.5)).mean()
    assert agree < 0.1


@pytest.mark.parametrize("method", compress.METHODS)
def test_labels_never_reach_the_fit(method, emotions):
    frame = planted(emotions, n=300)
    extra = planted(emotions, n=20, seed=1).drop(columns=["label", "split"])
    a, _ = compress.compress(method, frame, extra, emotions, FAST, seed=3)
    shuffled = frame.assign(label=np.random.default_rng(9).permutation(frame["label"].to_numpy()))
    b, _ = compress.compress(method, shuffled, extra, emotions, FAST, seed=3)
    pd.testing.assert_frame_equal(a, b)
    train, valid = split_frames(frame)
    assert "label" not in compress.label_free(train, emotions).columns


def test_rule_based_methods(emotions):
    f = pd.DataFrame([[0.9, 0.1, 0.2], [0.2, 0.6, 0.8], [0.5, 0.5, 0.5]], columns=["positive", "negative", "unhappy"])
    for c in emotions.emotion_columns:
        if c not in f:
            f[c] = 0.5
    assert (simple.fit_direct(f, f, emotions, {}, 0).predict(f) > 0.5).tolist() == [True, False, False]
    assert (simple.fit_softmax(f, f, emotions, {}, 0).predict(f) > 0.5).tolist() == [True, False, False]
    assert (simple.fit_unhappy(f, f, emotions, {}, 0).predict(f) > 0.5).tolist() == [True, False, False]


def test_lda_prepends_present_emotions(emotions):
    f = planted(emotions, n=3)
    f.loc[0, emotions.emotion_columns] = 0.0
    f.loc[0, ["happy", "calm"]] = 0.9
    docs = compress.lda_documents(f.iloc[:1], emotions, 0.5)
    assert docs[0][:2] == ["happy", "calm"] and set(docs[0][2:]) <= set(FILLER)


def test_lda_chooses_topics_without_labels(emotions):
    frame = planted(emotions)
    train, valid = split_frames(frame)
    fitted = compress.fit("lda", train, valid, emotions, FAST["lda"], seed=3)
    assert fitted.chosen["num_topics"] in (2, 4)
    assert len(fitted.chosen["trials"]) == 2
    # deterministic with the seed
    again = compress.fit("lda", train, valid, emotions, FAST["lda"], seed=3)
    np.testing.assert_array_equal(fitted.predict(frame), again.predict(frame))


def test_table2_has_majority_row(emotions):
    frame = planted(emotions, n=200)
    split = frame[["id", "label", "split"]]
    perfect = pd.DataFrame({"id": frame.id, "dataset": "labelled", "score": frame.label.astype(float), "label": frame.label})
    flipped = perfect.assign(label=1 - perfect.label)
    table = compress.table2({"perfect": perfect, "flipped": flipped}, split)
    assert table["method"].tolist() == ["perfect", "flipped", "majority"]
    row = table.set_index("method")
    assert row.loc["perfect", "accuracy"] == 1.0 and row.loc["perfect", "mcc"] == pytest.approx(1.0)
    assert row.loc["flipped", "accuracy"] == 0.0
    test = frame[frame.split == "test"]
    assert row.loc["majority", "accuracy"] == pytest.approx(max(test.label.mean(), 1 - test.label.mean())) or row.loc["majority", "accuracy"] == pytest.approx(
        (test.label == int(frame[frame.split == "train"].label.mean() >= 0.5)).mean())
    assert row.loc["majority", "mcc"] == 0.0


def test_missing_scores_name_the_id():
    texts = pd.DataFrame({"id": ["a", "b"], "text": ["x", "y"]})
    scores = pd.DataFrame({"id": ["a"], "happy": [0.5]})
    with pytest.raises(ValueError, match="'b'"):
        compress.join_scores(texts, scores, name="scores.parquet")
