"""Label compression: turn the 0-shot emotion scores of a text into one sentiment label.

Every method is fitted on the train split's *scores* only (never its labels), chooses its
hyperparameters on the valid split with a label-free criterion, and gives every text
(labelled and extra) a score P(positive) in [0,1] and a label ``score > 0.5``:

* ``direct``: score = the direct hypothesis "positive" alone, P(positive); label = P > 0.5.
  "negative" is not read (weighing the two is ``softmax``).
* ``unhappy``: score = 1 - unhappy, so label = (unhappy < 0.5).
* ``softmax``: score = softmax(p, n)[positive] = sigmoid(p - n) of the direct hypotheses
  "positive" (p) and "negative" (n); label = p > n.
* ``pca``, ``ae``, ``vae``: a 1-D code of the 40 emotion scores, standardised on train, and
  P(positive) = sigmoid(w * code + b) (:class:`CodeThreshold`). Orientation (the sign of w)
  and boundary (b) come from the emotion scores, never from labels, and assume no class
  balance: by default (``compress.code_threshold: anchor``) a 1-D logistic regression of
  the affect anchor mean(positive-emotion scores) > mean(negative-emotion scores) on the
  code. AE/VAE keep the epoch with the lowest valid reconstruction loss (label-free early
  stopping).
* ``lda``: the paper's Algorithm 2 (:func:`fit_lda`); the number of topics is chosen from
  the config list by the held-out per-word likelihood bound on valid (label-free).
"""

from .base import Fitted, affect_index, emotion_matrix, sigmoid
from .codes import CODE_THRESHOLDS, CodeThreshold, affect_anchor
from .lda import lda_documents
from .stage import CODE_METHODS, FITTERS, METHODS, compress, fit, join_scores, label_free, table2

__all__ = [
    "CODE_METHODS",
    "CODE_THRESHOLDS",
    "CodeThreshold",
    "FITTERS",
    "Fitted",
    "METHODS",
    "affect_anchor",
    "affect_index",
    "compress",
    "emotion_matrix",
    "fit",
    "join_scores",
    "label_free",
    "lda_documents",
    "sigmoid",
    "table2",
]
