"""Compressions that read one or two hypothesis scores: ``direct``, ``unhappy``, ``softmax``."""

from __future__ import annotations

import numpy as np

from .base import Fitted, sigmoid


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
