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
scorers), :mod:`.run` (config, resumable chunked scoring).

A scorer has ``columns`` (output column names), ``score_raw(texts)`` -> float32 [n, K]
(what the resumable chunks store) and ``finalise(raw)`` -> scores in [0,1] (identity for
NSP; the dataset-level calibration for similarity, which needs every chunk).

:func:`score_dataset` runs a scorer over a dataset in resumable chunks: each finished chunk
is written atomically to ``workdir/chunk-00012.parquet``; ``workdir/fingerprint.json``
names the config, model and inputs the chunks were made from, so stale chunks are
deleted instead of reused. A killed job restarts at the first missing chunk, and the
result equals an uninterrupted run.
"""

from .emotions import Emotions, hypothesis_sentences, load_emotions
from .nsp import NSPScorer, nsp_logits
from .config import SCORERS, ZeroShotConfig
from .run import clear_workdir, fingerprint, make_scorer, read_texts, score_dataset
from .similarity import SimilarityScorer, calibrate_cosines

__all__ = [
    "Emotions", "NSPScorer", "SCORERS", "SimilarityScorer", "ZeroShotConfig", "calibrate_cosines", "clear_workdir",
    "fingerprint", "hypothesis_sentences", "load_emotions", "make_scorer", "nsp_logits", "read_texts", "score_dataset",
]
