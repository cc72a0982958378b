"""The paper's 0-shot scorer: BERT next-sentence prediction on
``[CLS] text [SEP] This example is <label>. [SEP]``; the score is P(is next).

Each text is tokenised once and joined to every pre-tokenised hypothesis; (text,
hypothesis) pairs are batched ``batch_size`` pairs per forward pass over length-sorted
texts, padded per batch, under ``torch.inference_mode``, in ``zeroshot.dtype``; the last
layer runs for [CLS] alone (:func:`nsp_logits`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..model.batching import length_order
from ..model.device import inference_dtype
from .config import ZeroShotConfig
from .emotions import Emotions, hypothesis_sentences


def nsp_logits(
    model, input_ids: torch.Tensor, token_type_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """``BertForNextSentencePrediction`` logits, with the last layer run for [CLS] alone.

    The NSP head reads only the last layer's [CLS] vector, so the last layer needs the keys
    and values of every token but the query, attention output, feed-forward and LayerNorms of
    [CLS] only: the same numbers as ``model(...).logits`` (tested to 1e-5) for about 1/L less
    work (8% of BERT-base).
    """
    bert = model.bert
    hidden = bert.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
    # additive mask over keys, [batch, 1, 1, seq]: 0 where attended, dtype-min at padding
    mask = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
    layers = bert.encoder.layer
    for layer in layers[:-1]:
        hidden = layer(hidden, mask)
    last = layers[-1]
    att = last.attention.self
    batch, seq = hidden.shape[:2]
    heads, head_dim = att.num_attention_heads, att.attention_head_size
    cls = hidden[:, :1]
    q = att.query(cls).view(batch, 1, heads, head_dim).transpose(1, 2)
    k = att.key(hidden).view(batch, seq, heads, head_dim).transpose(1, 2)
    v = att.value(hidden).view(batch, seq, heads, head_dim).transpose(1, 2)
    context = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=att.scaling)
    context = context.transpose(1, 2).reshape(batch, 1, heads * head_dim)
    attended = last.attention.output(context, cls)
    out = last.output(last.intermediate(attended), attended)[:, 0]
    return model.cls.seq_relationship(bert.pooler.activation(bert.pooler.dense(out)))


class NSPScorer:
    """P(is next) of BERT's next-sentence head for every (text, hypothesis) pair."""

    def __init__(self, model, tokenizer, emotions: Emotions, cfg: ZeroShotConfig, *, device="cpu", progress=True):
        self.dtype = inference_dtype(cfg.dtype, device)
        self.model = model.to(device=device, dtype=self.dtype).eval()
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.cfg = cfg
        self.progress = progress
        self.columns = emotions.columns
        self.hyp_ids = [
            tokenizer(s, add_special_tokens=False)["input_ids"] for s in hypothesis_sentences(emotions, cfg.template)
        ]
        longest = max(len(h) for h in self.hyp_ids)
        # the text is cut so the longest pair still fits: [CLS] text [SEP] hyp [SEP]
        self.max_text = cfg.max_length - longest - 3
        if self.max_text < 1:
            raise ValueError(
                f"model.max_length={cfg.max_length} leaves no room for text next to a {longest}-token hypothesis"
            )
        self.cls, self.sep, self.pad = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id

    @classmethod
    def from_dir(cls, model_dir, emotions, cfg, *, device="cpu", progress=True):
        from transformers import AutoTokenizer, BertForNextSentencePrediction
        from transformers.utils import logging as hf_logging

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the unused MLM head is "unexpected", not news
        try:
            model = BertForNextSentencePrediction.from_pretrained(str(model_dir))
        finally:
            hf_logging.set_verbosity(verbosity)
        return cls(
            model, AutoTokenizer.from_pretrained(str(model_dir)), emotions, cfg, device=device, progress=progress
        )

    def encode_texts(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer(list(texts), add_special_tokens=False, truncation=True, max_length=self.max_text)[
            "input_ids"
        ]

    def build_batch(self, text_ids: Sequence[list[int]], pairs: Sequence[tuple[int, int]]) -> dict[str, torch.Tensor]:
        """input_ids / token_type_ids / attention_mask for (text index, hypothesis index) pairs."""
        seqs, types = [], []
        for t, h in pairs:
            first = [self.cls, *text_ids[t], self.sep]
            second = [*self.hyp_ids[h], self.sep]
            seqs.append(first + second)
            types.append([0] * len(first) + [1] * len(second))
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad, dtype=torch.long)
        tt = torch.zeros((len(seqs), width), dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, (s, ty) in enumerate(zip(seqs, types)):
            ids[i, : len(s)] = torch.tensor(s)
            tt[i, : len(s)] = torch.tensor(ty)
            mask[i, : len(s)] = 1
        return {"input_ids": ids, "token_type_ids": tt, "attention_mask": mask}

    @torch.inference_mode()
    def score_raw(self, texts: Sequence[str]) -> np.ndarray:
        text_ids = self.encode_texts(texts)
        k = len(self.hyp_ids)
        out = np.zeros((len(text_ids), k), dtype=np.float32)
        # every pair of a text sits in consecutive rows, so batches cut across texts freely
        pairs = [(int(t), h) for t in length_order([len(x) for x in text_ids]) for h in range(k)]
        step = self.cfg.batch_size
        for start in tqdm(range(0, len(pairs), step), desc="nsp", disable=not self.progress, mininterval=5):
            chunk = pairs[start : start + step]
            batch = {n: v.to(self.device) for n, v in self.build_batch(text_ids, chunk).items()}
            logits = nsp_logits(self.model, **batch).float()
            p_next = torch.softmax(logits, dim=-1)[:, 0].cpu().numpy()
            rows = np.fromiter((t for t, _ in chunk), dtype=np.int64, count=len(chunk))
            cols = np.fromiter((h for _, h in chunk), dtype=np.int64, count=len(chunk))
            out[rows, cols] = p_next
        return out
