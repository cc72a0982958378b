"""The default model's 0-shot scorer (MiniLM has no NSP head): the cosine between a text's
mean-pooled embedding and the hypothesis sentence's, calibrated to [0,1] without labels.

Each text is embedded once, each hypothesis once; a (text x hypothesis) matrix product
gives every pair. How this differs from NSP: docs/zeroshot.md.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..model.device import inference_dtype
from ..model.embed import embed_texts
from .config import ZeroShotConfig
from .emotions import Emotions, hypothesis_sentences


def calibrate_cosines(cos: np.ndarray) -> tuple[np.ndarray, dict]:
    """Map a [N, K] cosine matrix to scores in [0,1] without labels.

    1. Subtract each text's mean cosine over its K hypotheses. Every hypothesis is the same
       template sentence with one word changed, so most of a text's cosine with any of them
       measures how close the text is to the template, not to the emotion. What is left is
       what an entailment model compares: does this label fit the text better than the
       text's other labels do?
    2. Divide by one scale, the standard deviation of those centred cosines pooled over the
       whole dataset being scored (all texts, all labels). One shared scale keeps the
       cosine ordering between labels (a label whose cosines vary more across texts keeps
       its larger spread); it sets only how sharp the sigmoid is.
    3. sigmoid: a score > 0.5 ("emotion present") means the label is closer to the text
       than the text's average hypothesis. No 0.5 decision depends on the fitted scale.
    Uses unlabelled cosines only; the statistics are returned for the record.
    """
    cos = np.asarray(cos, dtype=np.float64)
    centred = cos - cos.mean(axis=1, keepdims=True)
    scale = float(centred.std()) if centred.size else 1.0
    scale = scale if scale > 1e-12 else 1.0
    scores = 1.0 / (1.0 + np.exp(-centred / scale))
    return scores.astype(np.float32), {
        "calibration": "sigmoid((cos - mean cos of the text over its hypotheses) / pooled sd over the dataset)",
        "scale": scale,
        "mean_cosine": float(cos.mean()) if cos.size else None,
    }


class SimilarityScorer:
    """Cosine of mean-pooled embeddings (text vs hypothesis sentence), calibrated to [0,1]."""

    def __init__(self, model, tokenizer, emotions: Emotions, cfg: ZeroShotConfig, *, device="cpu", progress=True):
        self.dtype = inference_dtype(cfg.dtype, device)
        self.model = model.to(device=device, dtype=self.dtype).eval()
        self.tokenizer = tokenizer
        self.cfg = cfg
        self.progress = progress
        self.columns = emotions.columns
        self.hyp_emb = embed_texts(
            self.model, tokenizer, hypothesis_sentences(emotions, cfg.template),
            batch_size=cfg.batch_size, max_length=cfg.max_length, progress=False,
        )

    @classmethod
    def from_dir(cls, model_dir, emotions, cfg, *, device="cpu", progress=True):
        from transformers import AutoModel, AutoTokenizer

        return cls(AutoModel.from_pretrained(str(model_dir)), AutoTokenizer.from_pretrained(str(model_dir)), emotions, cfg, device=device, progress=progress)

    @torch.inference_mode()
    def score_raw(self, texts: Sequence[str]) -> np.ndarray:
        emb = embed_texts(
            self.model, self.tokenizer, list(texts),
            batch_size=self.cfg.batch_size, max_length=self.cfg.max_length, progress=self.progress, desc="similarity",
        )
        return (emb @ self.hyp_emb.T).astype(np.float32)

    def finalise(self, raw: np.ndarray) -> tuple[np.ndarray, dict]:
        return calibrate_cosines(raw)
