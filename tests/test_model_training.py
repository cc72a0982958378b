"""Training is seeded and deterministic on CPU; evaluation returns the documented metrics."""

import numpy as np
import torch

from conftest import train_cfg
from lotteryprune.model import training
from lotteryprune.model.sources import load_classifier, load_tokenizer

TEXTS = ["good day", "bad day", "i love it", "i hate it", "great fun", "so sad", "happy now", "not good"] * 3
LABELS = [1, 0, 1, 0, 1, 0, 1, 0] * 3


def _train(model_dir, seed, masks=None):
    model = load_classifier(model_dir, seed=seed)
    tok = load_tokenizer(model_dir)
    cfg = train_cfg(epochs=2, lr=1e-3, batch_size=4, seed=seed, max_length=16)
    stats = training.train(model, tok, TEXTS, LABELS, cfg, weight_masks=masks, progress=False)
    return model, stats


def test_same_seed_same_weights(tiny_model_dir):
    a, stats = _train(tiny_model_dir, 3)
    b, _ = _train(tiny_model_dir, 3)
    c, _ = _train(tiny_model_dir, 4)
    assert stats["steps"] == 12 and stats["samples"] == 48
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(pa, pb), name
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))


def test_training_only_the_used_embedding_rows_gives_dense_adamw_weights(tiny_model_dir, monkeypatch):
    """The optimiser sees only the word-embedding rows the texts use; every weight, the
    untouched rows (decayed as AdamW decays a zero-gradient row) included, equals dense AdamW."""
    subset, _ = _train(tiny_model_dir, 5)
    monkeypatch.setattr(training, "_row_subset", lambda *a, **k: None)
    dense, _ = _train(tiny_model_dir, 5)
    pretrained = load_classifier(tiny_model_dir, seed=5)
    assert type(subset.get_input_embeddings()) is torch.nn.Embedding  # the layer is back
    names = [n for n, _ in subset.named_parameters()]
    assert names == [n for n, _ in dense.named_parameters()]
    for (name, a), (_, b) in zip(subset.named_parameters(), dense.named_parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=name)
    word = "bert.embeddings.word_embeddings.weight"
    used = {i for ids in load_tokenizer(tiny_model_dir)(TEXTS)["input_ids"] for i in ids}
    unused = [i for i in range(subset.config.vocab_size) if i not in used and i != subset.config.pad_token_id]
    before, after = dict(pretrained.named_parameters())[word][unused], dict(subset.named_parameters())[word][unused]
    # decayed, not trained: each untouched row is the pretrained row times one common factor < 1
    factor = (after / before)[before.abs() > 1e-3]
    assert 0.99 < factor.min() <= factor.max() < 1.0 and factor.max() - factor.min() < 1e-5


def test_row_subset_is_not_used_where_every_gradient_is_read(tiny_model_dir):
    model = load_classifier(tiny_model_dir)
    tok = load_tokenizer(tiny_model_dir)
    ids = tok(TEXTS)["input_ids"]
    assert training._row_subset(model, ids, tok, None, None) is not None
    assert training._row_subset(model, ids, tok, None, lambda step, total: None) is None  # SEVEN's hook
    assert training._row_subset(model, ids, tok, {"x": torch.ones(1)}, None) is None  # weight masks
    model.get_input_embeddings().scale_grad_by_freq = True
    assert training._row_subset(model, ids, tok, None, None) is None
    model.get_input_embeddings().scale_grad_by_freq = False
    model.get_input_embeddings().weight.requires_grad_(False)
    assert training._row_subset(model, ids, tok, None, None) is None


def test_weight_masks_stay_zero_through_training(tiny_model_dir):
    model = load_classifier(tiny_model_dir)
    name = "bert.encoder.layer.0.attention.self.query.weight"
    shape = dict(model.named_parameters())[name].shape
    mask = torch.rand(shape, generator=torch.Generator().manual_seed(0)) > 0.5
    trained, _ = _train(tiny_model_dir, 0, {name: mask})
    assert (dict(trained.named_parameters())[name][~mask] == 0).all()


def test_fractional_epochs_and_grouped_batches():
    rng = np.random.default_rng(0)
    batches = training.grouped_batches([5, 1, 9, 3, 7, 2], 2, rng)
    assert sorted(np.concatenate(batches).tolist()) == list(range(6))
    assert [b.tolist() for b in training.grouped_batches([5, 1, 9], 2, None)] == [[2, 0], [1]]


def test_metrics():
    m = training.classification_metrics([1, 1, 0, 0], [1, 0, 0, 0])
    # by hand: TP 1, FN 1, TN 2, FP 0
    assert m["accuracy"] == 0.75 and abs(m["f1"] - 2 / 3) < 1e-9 and m["n"] == 4
    assert abs(m["macro_f1"] - (2 / 3 + 4 / 5) / 2) < 1e-9
    assert abs(m["mcc"] - 2 / 12**0.5) < 1e-9


def test_metrics_match_scikit_learn_including_one_class_answers():
    """The numpy metrics are scikit-learn's (zero_division=0), also for degenerate cases:
    a model that answers one class, a test split with one class, a class absent from both."""
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    rng = np.random.default_rng(0)
    for _ in range(500):
        n = int(rng.integers(1, 25))
        y_true = rng.integers(0, 2, n) if rng.random() > 0.2 else np.full(n, int(rng.integers(0, 2)))
        kind = rng.integers(0, 3)
        y_pred = rng.integers(0, 2, n) if kind == 0 else np.full(n, int(kind == 1))
        m = training.classification_metrics(y_true, y_pred)
        assert abs(m["accuracy"] - accuracy_score(y_true, y_pred)) < 1e-12
        assert abs(m["f1"] - f1_score(y_true, y_pred, pos_label=1, zero_division=0)) < 1e-12
        assert abs(m["macro_f1"] - f1_score(y_true, y_pred, average="macro", zero_division=0)) < 1e-12
        expected_mcc = matthews_corrcoef(y_true, y_pred) if len(np.unique(y_true)) > 1 else 0.0
        assert abs(m["mcc"] - expected_mcc) < 1e-12
