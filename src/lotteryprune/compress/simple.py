"""Compressions that read one or two hypothesis scores: ``direct``, ``unhappy``, ``softmax``.

* ``direct`` (the paper's "direct sentiment prediction"): the score of the hypothesis
  "This example is positive." alone, read as P(positive); label = score > 0.5. The negative
  hypothesis is not consulted: weighing "positive" against "negative" is the paper's
  separate approach, ``softmax``. (p / (p + n) > 0.5 is p > n, the softmax label, which would
  make two rows of Table 2 equal by construction.)
* ``unhappy`` (the best single emotion): score = 1 - P(unhappy); label = unhappy < 0.5.
* ``softmax``: softmax over the two direct hypotheses' scores, (p, n) -> e^p / (e^p + e^n)
  = sigmoid(p - n); label = p > n.
"""

from __future__ import annotations

import numpy as np

from .base import Fitted, sigmoid


def fit_direct(train, valid, emotions, params, seed):
    """P(positive) = the "positive" hypothesis's own score; "negative" is not read."""
    return Fitted(lambda frame: frame["positive"].to_numpy(np.float64))


def fit_unhappy(train, valid, emotions, params, seed):
    if "unhappy" not in emotions.negative:
        raise KeyError("compress method 'unhappy' needs 'unhappy' in the negative emotions of emotions.yaml")
    return Fitted(lambda frame: 1.0 - frame["unhappy"].to_numpy(np.float64))


def fit_softmax(train, valid, emotions, params, seed):
    """softmax(p, n)[positive] = sigmoid(p - n) of the direct hypotheses' scores p, n."""
    return Fitted(
        lambda frame: sigmoid(frame["positive"].to_numpy(np.float64) - frame["negative"].to_numpy(np.float64))
    )
