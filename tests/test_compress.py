"""Label compression on planted score matrices: recovery, orientation from the lists, no labels,
and each method against an independent computation (closed forms, sklearn, numpy, gensim)."""

import numpy as np
import pandas as pd
import pytest
import torch

from lotteryprune import compress
from lotteryprune.compress import simple
from lotteryprune.zeroshot import Emotions, load_emotions

FILLER = "day time people thing work home week night game music phone movie food city year".split()
FAST = {
    "ae": {"hidden": 8, "epochs": 15, "lr": 0.01, "batch_size": 64},
    "vae": {"hidden": 8, "epochs": 15, "lr": 0.01, "batch_size": 64, "beta": 1.0},
    "lda": {"num_topics": [2, 4], "passes": 5, "min_count": 2},
    "boundary": 0.5,
}


@pytest.fixture(scope="module")
def emotions():
    return load_emotions("config/emotions.yaml")


def planted(emotions, n=600, seed=0, pos_rate=0.6, strength="normal"):
    """Scores driven by a hidden sentiment: positive emotions up and negative down for y=1.

    ``strength``: the hidden sentiment is +-1 plus normal noise (``normal``), or +-(0.4 + an
    exponential) with a quarter of the gain (``graded``: a clear gap at 0, but most texts mild
    and the scores far from saturated, as the similarity scores of real tweets are)."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < pos_rate).astype(int)
    if strength == "graded":
        a = np.where(y == 1, 1.0, -1.0) * (0.4 + rng.exponential(0.6, n))
    else:
        a = np.where(y == 1, 1.0, -1.0) + rng.normal(0, 0.35, n)
    bias = rng.normal(0, 0.3, len(emotions.columns))
    load = np.array([1.0] * len(emotions.positive) + [-1.0] * len(emotions.negative) + [0.6, -0.6])
    gain = 0.5 if strength == "graded" else 2.0
    logits = (
        gain * a[:, None] * load[None, :] * rng.uniform(0.5, 1.5, len(load)) + bias + rng.normal(0, 0.5, (n, len(load)))
    )
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


def _hypothesis_frame(emotions, rows):
    f = pd.DataFrame(rows, columns=["positive", "negative", "unhappy"])
    for c in emotions.emotion_columns:
        if c not in f:
            f[c] = 0.5
    return f


def test_rule_based_methods(emotions):
    f = _hypothesis_frame(emotions, [[0.9, 0.1, 0.2], [0.2, 0.6, 0.8], [0.5, 0.5, 0.5]])
    assert (simple.fit_direct(f, f, emotions, {}, 0).predict(f) > 0.5).tolist() == [True, False, False]
    assert (simple.fit_softmax(f, f, emotions, {}, 0).predict(f) > 0.5).tolist() == [True, False, False]
    assert (simple.fit_unhappy(f, f, emotions, {}, 0).predict(f) > 0.5).tolist() == [True, False, False]


def test_direct_is_the_positive_hypothesis_alone(emotions):
    # p > n but p < 0.5, and p < n but p > 0.5: direct follows p alone, softmax follows p - n
    f = _hypothesis_frame(emotions, [[0.4, 0.1, 0.5], [0.7, 0.9, 0.5], [0.6, 0.2, 0.5], [0.3, 0.8, 0.5]])
    direct = simple.fit_direct(f, f, emotions, {}, 0).predict(f)
    np.testing.assert_array_equal(direct, f["positive"].to_numpy(np.float64))
    assert (direct > 0.5).tolist() == [False, True, True, False]
    moved = f.assign(negative=1 - f["negative"])  # the negative hypothesis is never read
    np.testing.assert_array_equal(simple.fit_direct(moved, moved, emotions, {}, 0).predict(moved), direct)
    assert (simple.fit_softmax(f, f, emotions, {}, 0).predict(f) > 0.5).tolist() == [True, False, True, False]


def test_softmax_and_unhappy_against_their_definitions(emotions):
    rng = np.random.default_rng(0)
    f = _hypothesis_frame(emotions, rng.random((50, 3)))
    p, n = f["positive"].to_numpy(), f["negative"].to_numpy()
    want = torch.softmax(torch.tensor(np.stack([p, n], 1)), dim=1)[:, 0].numpy()  # softmax over (p, n)
    np.testing.assert_allclose(simple.fit_softmax(f, f, emotions, {}, 0).predict(f), want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        simple.fit_unhappy(f, f, emotions, {}, 0).predict(f), 1 - f["unhappy"].to_numpy(), atol=0
    )


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
    perfect = pd.DataFrame(
        {"id": frame.id, "dataset": "labelled", "score": frame.label.astype(float), "label": frame.label}
    )
    flipped = perfect.assign(label=1 - perfect.label)
    table = compress.table2({"perfect": perfect, "flipped": flipped}, split)
    assert table["method"].tolist() == ["perfect", "flipped", "majority"]
    row = table.set_index("method")
    assert row.loc["perfect", "accuracy"] == 1.0 and row.loc["perfect", "mcc"] == pytest.approx(1.0)
    assert row.loc["flipped", "accuracy"] == 0.0
    test = frame[frame.split == "test"]
    assert row.loc["majority", "accuracy"] == pytest.approx(max(test.label.mean(), 1 - test.label.mean())) or row.loc[
        "majority", "accuracy"
    ] == pytest.approx((test.label == int(frame[frame.split == "train"].label.mean() >= 0.5)).mean())
    assert row.loc["majority", "mcc"] == 0.0


def test_missing_scores_name_the_id():
    texts = pd.DataFrame({"id": ["a", "b"], "text": ["x", "y"]})
    scores = pd.DataFrame({"id": ["a"], "happy": [0.5]})
    with pytest.raises(ValueError, match="'b'"):
        compress.join_scores(texts, scores, name="scores.parquet")


# --- the 1-D codes' threshold: from the emotion scores, no balance assumed ---------------------


@pytest.mark.parametrize("method", compress.CODE_METHODS)
@pytest.mark.parametrize("pos_rate", [0.8, 0.2])
def test_code_labels_recover_an_unbalanced_class_rate(method, pos_rate, emotions):
    """80% (or 20%) positive texts with clearly separated emotion scores: the default threshold
    must give about that rate, where a boundary at the code's mean gives far closer to half."""
    frame = planted(emotions, n=1000, seed=5, pos_rate=pos_rate, strength="graded")
    train, valid = split_frames(frame)
    truth = frame["label"].to_numpy()
    pred = compress.fit(method, train, valid, emotions, FAST.get(method, {}), seed=3).predict(frame) > 0.5
    assert abs(pred.mean() - truth.mean()) < 0.03, (pred.mean(), truth.mean())
    assert (pred == truth).mean() > 0.97
    centred = (
        compress.fit(method, train, valid, emotions, FAST.get(method, {}), seed=3, code_threshold="mean").predict(frame)
        > 0.5
    )
    assert abs(centred.mean() - truth.mean()) > 0.1  # what the old centred threshold did: the test tells them apart


def test_anchor_threshold_is_a_logistic_regression_of_the_affect_anchor():
    """(w, b) against sklearn's logistic regression of the anchor (affect > 0) on the standardised code."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    y = rng.random(3000) < 0.7  # right labels known: 70% positive
    code = np.where(y, 2.0, -1.0) + rng.normal(0, 1.2, y.size)
    affect = -0.5 * code + rng.normal(0, 0.8, y.size)  # the code runs against the affect index
    thr = compress.CodeThreshold(code, affect, "anchor")
    z = (code - code.mean()) / code.std()
    ref = LogisticRegression(C=1e3, tol=1e-12, max_iter=10_000).fit(z[:, None], affect > 0)  # ridge 1e-3 = 1 / C
    assert thr.w == pytest.approx(ref.coef_[0, 0], rel=1e-4) and thr.b == pytest.approx(
        ref.intercept_[0], rel=1e-4, abs=1e-6
    )
    assert thr.sign == -1.0  # orientation: positive where the affect index is high, i.e. low code
    np.testing.assert_allclose(thr(code), ref.predict_proba(z[:, None])[:, 1], atol=1e-6)
    # the boundary is where the code explains the anchor, not the code's mean
    assert thr.boundary() == pytest.approx(code.mean() - thr.b * code.std() / thr.w)
    assert thr(np.array([thr.boundary()]))[0] == pytest.approx(0.5)


def test_anchor_rate_follows_the_anchor_not_a_balance():
    rng = np.random.default_rng(2)
    for rate in (0.1, 0.5, 0.9):
        y = rng.random(4000) < rate
        code = np.where(y, 1.0, -1.0) + rng.normal(0, 0.3, y.size)  # right labels known, separated
        thr = compress.CodeThreshold(code, code + rng.normal(0, 0.05, y.size), "anchor")
        assert ((thr(code) > 0.5) == y).mean() > 0.99
        assert (thr(code) > 0.5).mean() == pytest.approx(y.mean(), abs=0.01)


def test_mixture_threshold_is_the_tied_gaussian_mixture_posterior():
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(3)
    y = rng.random(4000) < 0.75
    code = np.where(y, 1.5, -1.5) + rng.normal(0, 0.6, y.size)
    thr = compress.CodeThreshold(code, code, "mixture")
    z = ((code - code.mean()) / code.std())[:, None]
    gm = GaussianMixture(2, covariance_type="tied", tol=1e-12, max_iter=5000, random_state=0).fit(z)
    upper = int(np.argmax(gm.means_[:, 0]))
    np.testing.assert_allclose(thr(code), gm.predict_proba(z)[:, upper], atol=1e-4)
    assert (thr(code) > 0.5).mean() == pytest.approx(y.mean(), abs=0.02)
    assert thr.record()["mixture"]["weights"][1] == pytest.approx(y.mean(), abs=0.02)


def test_mean_threshold_is_the_centred_code():
    rng = np.random.default_rng(4)
    code = rng.normal(3.0, 2.0, 500)
    thr = compress.CodeThreshold(code, -code, "mean")
    np.testing.assert_allclose(thr(code), 1 / (1 + np.exp((code - code.mean()) / code.std())), atol=1e-12)
    with pytest.raises(ValueError, match="code_threshold"):
        compress.CodeThreshold(code, code, "median")


def test_pca_code_is_the_top_eigenvector(emotions):
    frame = planted(emotions, n=800, seed=6)
    train, valid = split_frames(frame)
    fitted = compress.fit("pca", train, valid, emotions, {}, seed=3)
    x = train[emotions.emotion_columns].to_numpy(np.float64)
    vals, vecs = np.linalg.eigh(np.cov(x, rowvar=False))
    top = vecs[:, -1]
    top = top * np.sign(
        top @ np.array([1.0] * len(emotions.positive) + [-1.0] * len(emotions.negative))
    )  # along the affect index
    loadings = np.array([fitted.chosen["loadings"][c] for c in emotions.emotion_columns])
    np.testing.assert_allclose(loadings * fitted.chosen["sign"], top * np.sign(fitted.chosen["w"]), atol=1e-4)
    assert fitted.chosen["explained_variance_ratio"] == pytest.approx(vals[-1] / vals.sum(), rel=1e-6)
    # the score is sigmoid(w z + b) of that projection
    z = (frame[emotions.emotion_columns].to_numpy(np.float64) - x.mean(0)) @ top
    z_tr = (x - x.mean(0)) @ top
    want = 1 / (1 + np.exp(-(abs(fitted.chosen["w"]) * (z - z_tr.mean()) / z_tr.std() + fitted.chosen["b"])))
    np.testing.assert_allclose(fitted.predict(frame), want, atol=1e-6)


def test_lda_against_gensim_topic_weights(emotions):
    """Algorithm 2 recomputed through gensim's own per-topic word lists and document topics."""
    frame = planted(emotions)
    train, valid = split_frames(frame)
    fitted = compress.fit("lda", train, valid, emotions, FAST["lda"], seed=3)
    model, vocab = fitted.parts["model"], fitted.parts["vocab"]
    pos = {e.replace(" ", "_") for e in emotions.positive}
    neg = {e.replace(" ", "_") for e in emotions.negative}
    for t in range(model.num_topics):
        words = dict(model.show_topic(t, topn=len(vocab)))
        p, n = sum(words.get(w, 0.0) for w in pos), sum(words.get(w, 0.0) for w in neg)
        assert fitted.chosen["topics"][t]["score"] == pytest.approx(p / (p + n), abs=1e-5)
    docs = fitted.parts["documents"](frame)
    top = [
        max(model.get_document_topics(vocab.doc2bow(d), minimum_probability=0.0), key=lambda tp: tp[1])[0] for d in docs
    ]
    want = np.array([fitted.chosen["topics"][t]["score"] for t in top])
    assert (np.abs(fitted.predict(frame) - want) < 1e-5).mean() > 0.98  # gensim re-infers with its own random init
