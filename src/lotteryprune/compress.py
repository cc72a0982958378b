"""Label compression: turn the 0-shot emotion scores of a text into one sentiment label.

Every method is fitted on the train split's *scores* only (never its labels), chooses its
hyperparameters on the valid split with a label-free criterion, and gives every text
(labelled and extra) a score P(positive) in [0,1] and a label ``score > 0.5``:

* ``direct``: score = p / (p + n) of the direct hypotheses "positive" (p) and "negative" (n),
  so label = p > n.
* ``unhappy``: score = 1 - unhappy, so label = (unhappy < 0.5).
* ``softmax``: score = softmax(p, n)[positive] = sigmoid(p - n). Its label equals
  ``direct``'s by construction (both are p > n); only the score differs.
* ``pca``, ``ae``, ``vae``: a 1-D code of the 40 emotion scores, standardised on train and
  passed through a sigmoid (so the train mean of the code is the 0.5 boundary). AE/VAE
  keep the epoch with the lowest valid reconstruction loss (label-free early stopping).
* ``lda``: the paper's Algorithm 2 (:func:`fit_lda`); the number of topics is chosen from
  the config list by the held-out per-word likelihood bound on valid (label-free).

Orientation of a 1-D code comes from the emotion lists, never from labels: the code is
flipped so that it correlates positively, on train, with the affect index
mean(positive-emotion scores) - mean(negative-emotion scores).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from .zeroshot import Emotions

log = logging.getLogger(__name__)

METHODS = ("direct", "unhappy", "softmax", "ae", "vae", "pca", "lda")
LDA_KEEP_N = 100_000  # text words kept in the LDA dictionary (most frequent); emotion words always kept


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


@dataclass
class Fitted:
    """A fitted compressor: ``predict(frame)`` -> P(positive) for each row of a score frame."""

    predict: Callable[[pd.DataFrame], np.ndarray]
    chosen: dict = field(default_factory=dict)


def affect_index(frame: pd.DataFrame, emotions: Emotions) -> np.ndarray:
    """mean(positive-emotion scores) - mean(negative-emotion scores): the lists' own direction."""
    return frame[list(emotions.positive)].to_numpy(np.float64).mean(1) - frame[list(emotions.negative)].to_numpy(np.float64).mean(1)


def emotion_matrix(frame: pd.DataFrame, emotions: Emotions) -> np.ndarray:
    missing = [c for c in emotions.emotion_columns if c not in frame.columns]
    if missing:
        raise KeyError(f"score frame lacks emotion columns {missing[:5]}")
    x = frame[emotions.emotion_columns].to_numpy(np.float64)
    if not np.isfinite(x).all():
        row = int(np.flatnonzero(~np.isfinite(x).all(1))[0])
        raise ValueError(f"score frame row {row} (id {frame['id'].iloc[row] if 'id' in frame else row}) has a non-finite score")
    return x


class CodeOrienter:
    """Standardise a 1-D code on train and orient it along the emotion lists' affect index."""

    def __init__(self, code_train: np.ndarray, affect_train: np.ndarray):
        self.mean = float(code_train.mean())
        self.sd = float(code_train.std()) or 1.0
        corr = np.corrcoef(code_train, affect_train)[0, 1] if code_train.std() > 0 and affect_train.std() > 0 else 1.0
        self.sign = 1.0 if not np.isfinite(corr) or corr >= 0 else -1.0
        self.corr = float(abs(corr)) if np.isfinite(corr) else 0.0

    def __call__(self, code: np.ndarray) -> np.ndarray:
        return sigmoid(self.sign * (code - self.mean) / self.sd)

    def record(self) -> dict:
        return {"code_mean": self.mean, "code_sd": self.sd, "sign": self.sign, "abs_corr_with_affect_index": self.corr}


# --------------------------------------------------------------------------- rule-based


def fit_direct(train, valid, emotions, params, seed):
    # The "positive" hypothesis alone, read as a probability (the paper's direct
    # prediction); `softmax` is the one that weighs it against "negative".
    return Fitted(lambda frame: frame["positive"].to_numpy(np.float64))


def fit_unhappy(train, valid, emotions, params, seed):
    if "unhappy" not in emotions.negative:
        raise KeyError("compress method 'unhappy' needs 'unhappy' in the negative emotions of emotions.yaml")
    return Fitted(lambda frame: 1.0 - frame["unhappy"].to_numpy(np.float64))


def fit_softmax(train, valid, emotions, params, seed):
    return Fitted(lambda frame: sigmoid(frame["positive"].to_numpy(np.float64) - frame["negative"].to_numpy(np.float64)))


# --------------------------------------------------------------------------- 1-D codes


def fit_pca(train, valid, emotions, params, seed):
    from sklearn.decomposition import PCA

    x = emotion_matrix(train, emotions)
    pca = PCA(n_components=1, svd_solver="full").fit(x)
    code = lambda frame: pca.transform(emotion_matrix(frame, emotions))[:, 0]
    orient = CodeOrienter(code(train), affect_index(train, emotions))
    loadings = dict(zip(emotions.emotion_columns, (orient.sign * pca.components_[0]).round(4).tolist()))
    return Fitted(lambda frame: orient(code(frame)), {"explained_variance_ratio": float(pca.explained_variance_ratio_[0]), **orient.record(), "loadings": loadings})


class _AE(nn.Module):
    def __init__(self, d: int, hidden: int, variational: bool):
        super().__init__()
        self.variational = variational
        self.enc = nn.Sequential(nn.Linear(d, hidden), nn.Tanh(), nn.Linear(hidden, 2 if variational else 1))
        self.dec = nn.Sequential(nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, d))

    def encode(self, x):
        h = self.enc(x)
        return (h[:, :1], h[:, 1:]) if self.variational else (h, None)

    def loss(self, x, beta: float, sample: bool, gen: torch.Generator | None = None):
        mu, logvar = self.encode(x)
        z = mu
        if self.variational and sample:
            z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=gen)
        recon = ((self.dec(z) - x) ** 2).sum(1).mean()
        if not self.variational:
            return recon
        kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)).mean()
        return recon + beta * kl


def _fit_autoencoder(train, valid, emotions, params, seed, variational: bool):
    hidden = int(params.get("hidden", 16))
    epochs = int(params.get("epochs", 60))
    lr = float(params.get("lr", 5e-3))
    batch_size = int(params.get("batch_size", 256))
    beta = float(params.get("beta", 1.0))
    x_tr = emotion_matrix(train, emotions)
    # centre per emotion, one pooled scale: labels keep their relative spread
    mean, scale = x_tr.mean(0), float(x_tr.std()) or 1.0
    prep = lambda x: torch.tensor((x - mean) / scale, dtype=torch.float32)
    xt, xv = prep(x_tr), prep(emotion_matrix(valid, emotions)) if len(valid) else None
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = _AE(xt.shape[1], hidden, variational)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    best, best_epoch, best_state, history = float("inf"), 0, None, []
    for epoch in range(1, epochs + 1):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), batch_size):
            loss = model.loss(xt[perm[i : i + batch_size]], beta, sample=True, gen=gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            held = xv if xv is not None and len(xv) else xt
            vloss = float(model.loss(held, beta, sample=False))
        history.append(vloss)
        if vloss < best - 1e-9:
            best, best_epoch = vloss, epoch
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()

    def code(frame):
        with torch.no_grad():
            return model.encode(prep(emotion_matrix(frame, emotions)))[0][:, 0].double().numpy()

    orient = CodeOrienter(code(train), affect_index(train, emotions))
    chosen = {"hidden": hidden, "epochs": epochs, "lr": lr, "batch_size": batch_size, "best_epoch": best_epoch,
              "valid_loss": best, "valid_loss_curve": [round(v, 5) for v in history], **orient.record()}
    if variational:
        chosen["beta"] = beta
    return Fitted(lambda frame: orient(code(frame)), chosen)


def fit_ae(train, valid, emotions, params, seed):
    return _fit_autoencoder(train, valid, emotions, params, seed, variational=False)


def fit_vae(train, valid, emotions, params, seed):
    return _fit_autoencoder(train, valid, emotions, params, seed, variational=True)


# --------------------------------------------------------------------------- LDA (Algorithm 2)


def _word(label: str) -> str:
    return re.sub(r"\s+", "_", label.strip().lower())


def lda_documents(frame: pd.DataFrame, emotions: Emotions, boundary: float) -> list[list[str]]:
    """Each text's tokens with the emotions scored above ``boundary`` prepended (Algorithm 2)."""
    from gensim.parsing.preprocessing import STOPWORDS
    from gensim.utils import simple_preprocess

    scores = emotion_matrix(frame, emotions)
    words = [_word(e) for e in emotions.emotion_columns]
    docs = []
    for row, text in zip(scores, frame["text"].tolist()):
        present = [w for w, s in zip(words, row) if s > boundary]
        tokens = [t for t in simple_preprocess(str(text), deacc=True, min_len=2) if t not in STOPWORDS]
        docs.append(present + tokens)
    return docs


def fit_lda(train, valid, emotions, params, seed, boundary: float = 0.5):
    """Algorithm 2: LDA over emotion-prefixed texts; a topic is positive when its positive
    emotion words outweigh its negative ones; a text takes its most probable topic's side."""
    from gensim.corpora import Dictionary
    from gensim.models import LdaModel

    num_topics = params.get("num_topics", [4, 8, 16])
    num_topics = [int(k) for k in (num_topics if isinstance(num_topics, (list, tuple)) else [num_topics])]
    passes = int(params.get("passes", 5))
    min_count = int(params.get("min_count", 2))
    pos_words = {_word(e) for e in emotions.positive}
    neg_words = {_word(e) for e in emotions.negative}
    docs_tr = lda_documents(train, emotions, boundary)
    vocab = Dictionary(docs_tr)
    emotion_ids = {vocab.token2id[w] for w in pos_words | neg_words if w in vocab.token2id}
    rare = [i for i, df in vocab.dfs.items() if df < min_count and i not in emotion_ids]
    vocab.filter_tokens(bad_ids=rare)
    if len(vocab) - len(emotion_ids) > LDA_KEEP_N:
        vocab.filter_extremes(no_below=1, no_above=1.0, keep_n=LDA_KEEP_N + len(emotion_ids), keep_tokens=list(pos_words | neg_words))
    vocab.compactify()
    corpus_tr = [vocab.doc2bow(d) for d in docs_tr]
    corpus_va = [vocab.doc2bow(d) for d in lda_documents(valid, emotions, boundary)] if len(valid) else corpus_tr
    trials = []
    best = None
    for k in num_topics:
        t0 = time.perf_counter()
        model = LdaModel(corpus=corpus_tr, id2word=vocab, num_topics=k, passes=passes, random_state=seed, chunksize=4096)
        bound = float(model.log_perplexity([d for d in corpus_va if d] or corpus_tr))
        trials.append({"num_topics": k, "valid_per_word_bound": bound, "seconds": time.perf_counter() - t0})
        log.info("lda: %d topics, valid per-word bound %.4f", k, bound)
        if best is None or bound > best[0]:
            best = (bound, k, model)
    _, k, model = best
    topics = model.get_topics()  # [k, V], rows sum to 1
    pos_ids = [vocab.token2id[w] for w in pos_words if w in vocab.token2id]
    neg_ids = [vocab.token2id[w] for w in neg_words if w in vocab.token2id]
    pos_w, neg_w = topics[:, pos_ids].sum(1), topics[:, neg_ids].sum(1)
    total = pos_w + neg_w
    topic_score = np.where(total > 0, pos_w / np.where(total > 0, total, 1.0), 0.5)

    def predict(frame):
        bows = [vocab.doc2bow(d) for d in lda_documents(frame, emotions, boundary)]
        model.random_state = np.random.RandomState(seed)  # inference inits gamma randomly: fix it per call
        gamma = np.concatenate([model.inference(bows[i : i + 4096])[0] for i in range(0, len(bows), 4096)]) if bows else np.zeros((0, k))
        return topic_score[gamma.argmax(1)] if len(bows) else np.zeros(0)

    top = lambda t: [w for w, _ in model.show_topic(t, topn=8)]
    chosen = {
        "num_topics": k, "passes": passes, "min_count": min_count, "boundary": boundary, "vocabulary": len(vocab),
        "trials": trials, "empty_train_docs": int(sum(1 for d in corpus_tr if not d)),
        "topics": [{"topic": t, "positive_weight": float(pos_w[t]), "negative_weight": float(neg_w[t]),
                    "score": float(topic_score[t]), "top_words": top(t)} for t in range(k)],
    }
    return Fitted(predict, chosen)


FITTERS = {"direct": fit_direct, "unhappy": fit_unhappy, "softmax": fit_softmax, "pca": fit_pca,
           "ae": fit_ae, "vae": fit_vae, "lda": fit_lda}


# --------------------------------------------------------------------------- the stage


def label_free(frame: pd.DataFrame, emotions: Emotions) -> pd.DataFrame:
    """What a fitter may see: id, text and the scores (never a label)."""
    keep = ["id"] + (["text"] if "text" in frame.columns else []) + emotions.columns
    missing = [c for c in keep if c not in frame.columns]
    if missing:
        raise KeyError(f"score frame lacks columns {missing[:5]}")
    return frame[keep].reset_index(drop=True)


def fit(method: str, train: pd.DataFrame, valid: pd.DataFrame, emotions: Emotions, params: dict | None = None,
        *, seed: int = 0, boundary: float = 0.5) -> Fitted:
    """Fit one method on label-free train/valid score frames."""
    if method not in FITTERS:
        raise ValueError(f"compress method {method!r}: expected one of {METHODS}")
    train, valid = label_free(train, emotions), label_free(valid, emotions)
    if method == "lda":
        if "text" not in train.columns:
            raise KeyError("compress method 'lda' needs the text column")
        return fit_lda(train, valid, emotions, params or {}, seed, boundary=boundary)
    return FITTERS[method](train, valid, emotions, params or {}, seed)


def join_scores(texts: pd.DataFrame, scores: pd.DataFrame, *, name: str) -> pd.DataFrame:
    """Data-stage rows joined to their 0-shot scores on id; every text must have scores."""
    texts = texts.assign(id=texts["id"].astype(str))
    scores = scores.assign(id=scores["id"].astype(str))
    merged = texts.merge(scores, on="id", how="left", validate="one_to_one", suffixes=("", "_score"))
    missing = merged[scores.columns[1]].isna()
    if missing.any():
        raise ValueError(f"{name}: id {merged['id'][missing].iloc[0]!r} has no 0-shot scores")
    return merged


def compress(method: str, labelled: pd.DataFrame, extra: pd.DataFrame, emotions: Emotions, cfg: dict, *, seed: int) -> tuple[pd.DataFrame, dict]:
    """Fit ``method`` on the train split's scores, label every text of both datasets.

    ``labelled``: split rows joined to scores (id, text, label, split, scores...);
    ``extra``: extra rows joined to scores. Returns (labels frame, metrics dict).
    """
    from .training import classification_metrics

    split = labelled["split"].to_numpy()
    t0 = time.perf_counter()
    fitted = fit(method, labelled[split == "train"], labelled[split == "valid"], emotions, cfg.get(method, {}),
                 seed=seed, boundary=0.5 if cfg.get("boundary") is None else float(cfg["boundary"]))
    fit_seconds = time.perf_counter() - t0
    frames = []
    for name, frame in (("labelled", labelled), ("extra", extra)):
        score = np.clip(np.asarray(fitted.predict(label_free(frame, emotions)), dtype=np.float64), 0.0, 1.0)
        frames.append(pd.DataFrame({"id": frame["id"].astype(str).to_numpy(), "dataset": name,
                                    "score": score.astype(np.float32), "label": (score > 0.5).astype(np.int64)}))
    labels = pd.concat(frames, ignore_index=True)
    pred = labels["label"].to_numpy()[: len(labelled)]
    truth = labelled["label"].to_numpy()
    metrics = {"method": method}
    for part in ("test", "valid", "train"):
        m = split == part
        metrics[part] = {**classification_metrics(truth[m].astype(int), pred[m]), "positive_rate": float(pred[m].mean()) if m.any() else None}
    metrics.update({
        "extra_positive_rate": float(labels["label"][len(labelled):].mean()) if len(extra) else None,
        "n_fit": int((split == "train").sum()),
        "chosen": fitted.chosen,
        "fit_seconds": fit_seconds,
    })
    return labels, metrics


def table2(labels_by_method: dict[str, pd.DataFrame], split: pd.DataFrame) -> pd.DataFrame:
    """Accuracy, F1, MCC of each method on the test split, plus the majority-class reference."""
    from .training import classification_metrics

    split = split.assign(id=split["id"].astype(str))
    test = split[split["split"] == "test"][["id", "label"]]
    majority = int(split.loc[split["split"] == "train", "label"].mean() >= 0.5)
    rows = []
    for method, labels in labels_by_method.items():
        lab = labels[labels["dataset"] == "labelled"][["id", "label"]].rename(columns={"label": "pred"})
        m = test.merge(lab.assign(id=lab["id"].astype(str)), on="id", how="left")
        if m["pred"].isna().any():
            raise ValueError(f"compress/{method}: test id {m['id'][m['pred'].isna()].iloc[0]!r} has no label")
        met = classification_metrics(m["label"].astype(int), m["pred"].astype(int))
        rows.append({"method": method, "accuracy": met["accuracy"], "f1": met["f1"], "mcc": met["mcc"],
                     "n": met["n"], "positive_rate": float(m["pred"].mean())})
    met = classification_metrics(test["label"].astype(int), np.full(len(test), majority))
    rows.append({"method": "majority", "accuracy": met["accuracy"], "f1": met["f1"], "mcc": met["mcc"],
                 "n": met["n"], "positive_rate": float(majority)})
    return pd.DataFrame(rows)
