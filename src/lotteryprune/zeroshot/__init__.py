"""0-shot emotion scores: one score in [0,1] per (text, hypothesis "This example is <label>.").

Two scorers behind one interface (``zeroshot.scorer``):

* :class:`NSPScorer` (the paper's): BERT next-sentence prediction on
  ``[CLS] text [SEP] This example is <label>. [SEP]``; the score is P(is next), the softmax
  of the NSP logits at index 0. Each text is tokenised once and joined to every
  pre-tokenised hypothesis; (text, hypothesis) pairs are batched ``batch_size`` pairs per
  forward pass over length-sorted texts, padded per batch, under ``torch.inference_mode``,
  in ``zeroshot.dtype``; the last layer runs for [CLS] alone (:func:`nsp_logits`).
* :class:`SimilarityScorer` (the default model's, MiniLM has no NSP head): the cosine between
  the text's mean-pooled embedding and the hypothesis sentence's, calibrated to [0,1]
  without labels (:func:`calibrate_cosines`). Each text is embedded once, each hypothesis
  once; a (text x hypothesis) matrix product gives every pair.

Modules: :mod:`.emotions` (the hypotheses), :mod:`.nsp` and :mod:`.similarity` (the two
scorers), :mod:`.run` (config, resumable chunked scoring), :mod:`.calibrate` (raw output ->
scores in [0,1], one calibration for every dataset).

A scorer has ``columns`` (output column names) and ``score_raw(texts)`` -> float32 [n, K]
(what the resumable chunks store: P(is next) for NSP, cosines for similarity).

:func:`score_dataset` runs a scorer over a dataset in resumable chunks: each finished chunk
is written atomically to ``<workdir>/<key>/chunk-00012.parquet``, keyed by the config,
the model's files and the inputs the chunks were made from, so stale chunks are never
reused. A killed job restarts at the first missing chunk, and the
result equals an uninterrupted run.

:func:`calibrate_datasets` then fits the calibration once, on the labelled train split's raw
scores (no labels), and applies it to every dataset: identity for NSP, the cosine
calibration for similarity (its scale is one number shared by the labelled and extra text).
"""

from .calibrate import apply_calibration, calibrate_datasets, fit_calibration
from .config import SCORERS, ZeroShotConfig
from .emotions import Emotions, hypothesis_sentences, load_emotions
from .nsp import NSPScorer, nsp_logits
from .run import fingerprint, make_scorer, read_texts, score_dataset
from .similarity import SimilarityScorer, calibrate_cosines, fit_cosine_scale

__all__ = [
    "Emotions",
    "NSPScorer",
    "SCORERS",
    "SimilarityScorer",
    "ZeroShotConfig",
    "apply_calibration",
    "calibrate_cosines",
    "calibrate_datasets",
    "fingerprint",
    "fit_calibration",
    "fit_cosine_scale",
    "hypothesis_sentences",
    "load_emotions",
    "make_scorer",
    "nsp_logits",
    "read_texts",
    "score_dataset",
]
