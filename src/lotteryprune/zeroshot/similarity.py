"""The default model's 0-shot scorer (MiniLM has no NSP head): the cosine between a text's
mean-pooled embedding and the hypothesis sentence's, calibrated to [0,1] without labels.

Each text is embedded once, each hypothesis once; a (text x hypothesis) matrix product
gives every pair (:meth:`SimilarityScorer.score_raw`, what the resumable chunks and
``results/zeroshot/raw/`` hold). The calibration (:func:`calibrate_cosines`) is fitted once,
on the labelled train split, and applied to every dataset (:mod:`.calibrate`). How this
differs from NSP: docs/zeroshot.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..model.device import inference_dtype
from ..model.embed import embed_texts
from .config import ZeroShotConfig
from .emotions import Emotions, hypothesis_sentences


def centre_cosines(cos: np.ndarray) -> np.ndarray:
    """Each text's cosines minus that text's mean cosine over its K hypotheses."""
    cos = np.asarray(cos, dtype=np.float64)
    return cos - cos.mean(axis=1, keepdims=True) if cos.size else cos.reshape(cos.shape)


def fit_cosine_scale(cos: np.ndarray) -> float:
    """The calibration's one fitted number: the sd of the text-centred cosines, pooled over
    every text and label of ``cos`` (the reference set: the labelled train split's texts)."""
    centred = centre_cosines(cos)
    if not centred.size:
        raise ValueError("cosine calibration: the reference set is empty")
    scale = float(centred.std())
    return scale if scale > 1e-12 else 1.0


def calibrate_cosines(cos: np.ndarray, scale: float) -> np.ndarray:
    """Map a [N, K] cosine matrix to scores in [0,1] without labels, with a scale fitted once.

    1. Subtract each text's mean cosine over its K hypotheses (no fitting: per text). Every
       hypothesis is the same template sentence with one word changed, so most of a text's
       cosine with any of them measures how close the text is to the template, not to the
       emotion. What is left is what an entailment model compares: does this label fit the
       text better than the text's other labels do?
    2. Divide by ``scale``: :func:`fit_cosine_scale` of the *reference* set (the labelled
       train split's texts), the same number for every dataset scored, so a score means the
       same on the labelled texts and on the extra text. One shared scale keeps the cosine
       ordering between labels; it sets only how sharp the sigmoid is.
    3. sigmoid: a score > 0.5 ("emotion present") means the label is closer to the text than
       the text's average hypothesis. No 0.5 decision depends on the fitted scale.
    """
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"cosine calibration: scale must be a positive number, got {scale!r}")
    scores = 1.0 / (1.0 + np.exp(-centre_cosines(cos) / float(scale)))
    return scores.astype(np.float32)


class SimilarityScorer:
    """Cosine of mean-pooled embeddings (text vs hypothesis sentence); calibrated to [0,1] later."""

    def __init__(self, model, tokenizer, emotions: Emotions, cfg: ZeroShotConfig, *, device="cpu", progress=True):
        self.dtype = inference_dtype(cfg.dtype, device)
        self.model = model.to(device=device, dtype=self.dtype).eval()
        self.tokenizer = tokenizer
        self.cfg = cfg
        self.progress = progress
        self.columns = emotions.columns
        self.hyp_emb = embed_texts(
            self.model,
            tokenizer,
            hypothesis_sentences(emotions, cfg.template),
            batch_size=cfg.batch_size,
            max_length=cfg.max_length,
            progress=False,
        )

    @classmethod
    def from_dir(cls, model_dir, emotions, cfg, *, device="cpu", progress=True):
        from transformers import AutoModel, AutoTokenizer

        return cls(
            AutoModel.from_pretrained(str(model_dir)),
            AutoTokenizer.from_pretrained(str(model_dir)),
            emotions,
            cfg,
            device=device,
            progress=progress,
        )

    @torch.inference_mode()
    def score_raw(self, texts: Sequence[str]) -> np.ndarray:
        emb = embed_texts(
            self.model,
            self.tokenizer,
            list(texts),
            batch_size=self.cfg.batch_size,
            max_length=self.cfg.max_length,
            progress=self.progress,
            desc="similarity",
        )
        return (emb @ self.hyp_emb.T).astype(np.float32)
