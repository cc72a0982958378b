"""The paper's LDA topic compression (Algorithm 2)."""

from __future__ import annotations

import logging
import re
import time

import numpy as np
import pandas as pd

from ..zeroshot.emotions import Emotions
from .base import Fitted, emotion_matrix

log = logging.getLogger(__name__)


LDA_KEEP_N = 100_000  # text words kept in the LDA dictionary (most frequent); emotion words always kept


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

    num_topics = params["num_topics"]
    num_topics = [int(k) for k in (num_topics if isinstance(num_topics, (list, tuple)) else [num_topics])]
    passes = int(params["passes"])
    min_count = int(params["min_count"])
    pos_words = {_word(e) for e in emotions.positive}
    neg_words = {_word(e) for e in emotions.negative}
    docs_tr = lda_documents(train, emotions, boundary)
    vocab = Dictionary(docs_tr)
    emotion_ids = {vocab.token2id[w] for w in pos_words | neg_words if w in vocab.token2id}
    rare = [i for i, df in vocab.dfs.items() if df < min_count and i not in emotion_ids]
    vocab.filter_tokens(bad_ids=rare)
    if len(vocab) - len(emotion_ids) > LDA_KEEP_N:
        vocab.filter_extremes(
            no_below=1, no_above=1.0, keep_n=LDA_KEEP_N + len(emotion_ids), keep_tokens=list(pos_words | neg_words)
        )
    vocab.compactify()
    corpus_tr = [vocab.doc2bow(d) for d in docs_tr]
    corpus_va = [vocab.doc2bow(d) for d in lda_documents(valid, emotions, boundary)] if len(valid) else corpus_tr
    trials = []
    best = None
    for k in num_topics:
        t0 = time.perf_counter()
        model = LdaModel(
            corpus=corpus_tr, id2word=vocab, num_topics=k, passes=passes, random_state=seed, chunksize=4096
        )
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
        gamma = (
            np.concatenate([model.inference(bows[i : i + 4096])[0] for i in range(0, len(bows), 4096)])
            if bows
            else np.zeros((0, k))
        )
        return topic_score[gamma.argmax(1)] if len(bows) else np.zeros(0)

    top = lambda t: [w for w, _ in model.show_topic(t, topn=8)]
    chosen = {
        "num_topics": k,
        "passes": passes,
        "min_count": min_count,
        "boundary": boundary,
        "vocabulary": len(vocab),
        "trials": trials,
        "empty_train_docs": int(sum(1 for d in corpus_tr if not d)),
        "topics": [
            {
                "topic": t,
                "positive_weight": float(pos_w[t]),
                "negative_weight": float(neg_w[t]),
                "score": float(topic_score[t]),
                "top_words": top(t),
            }
            for t in range(k)
        ],
    }
    return Fitted(
        predict,
        chosen,
        {
            "model": model,
            "vocab": vocab,
            "topic_score": topic_score,
            "documents": lambda frame: lda_documents(frame, emotions, boundary),
        },
    )
