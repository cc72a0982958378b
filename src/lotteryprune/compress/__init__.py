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

from .base import Fitted, affect_index, emotion_matrix, sigmoid
from .codes import CodeOrienter
from .lda import lda_documents
from .stage import FITTERS, METHODS, compress, fit, join_scores, label_free, table2

__all__ = [
    "CodeOrienter", "FITTERS", "Fitted", "METHODS", "affect_index", "compress", "emotion_matrix", "fit",
    "join_scores", "label_free", "lda_documents", "sigmoid", "table2",
]
