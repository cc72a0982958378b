"""A hub model is read at the revision the config pins (model.revision), and model.json
records it and the commit the hub resolved it to. The hub is out of reach here, so
transformers' loaders are replaced by ones that record what they were asked for and
hand back a tiny local BERT."""

from __future__ import annotations

import pytest
import transformers

from lotteryprune.model.sources import materialise, tiny_bert

COMMIT = "86b5e0934494bd15c9632b12f734a8a67f723594"


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    local = str(tiny_bert(tmp_path / "hub-copy", layers=1, heads=2))
    calls = []
    model_loader = transformers.AutoModelForPreTraining.from_pretrained
    tokenizer_loader = transformers.AutoTokenizer.from_pretrained

    def model_from_hub(name, *args, **kwargs):
        if name != "org/bert":
            return model_loader(name, *args, **kwargs)
        calls.append(("model", name, kwargs.get("revision")))
        model = model_loader(local)
        model.config._commit_hash = COMMIT  # what a hub download sets
        return model

    def tokenizer_from_hub(name, *args, **kwargs):
        if name != "org/bert":
            return tokenizer_loader(name, *args, **kwargs)
        calls.append(("tokenizer", name, kwargs.get("revision")))
        return tokenizer_loader(local)

    monkeypatch.setattr(transformers.AutoModelForPreTraining, "from_pretrained", model_from_hub)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", tokenizer_from_hub)
    return calls


def test_hub_model_is_read_at_the_pinned_revision(tmp_path, fake_hub):
    info = materialise("hub:org/bert", tmp_path / "pretrained", revision=COMMIT)
    assert fake_hub == [("model", "org/bert", COMMIT), ("tokenizer", "org/bert", COMMIT)]
    assert info["revision"] == COMMIT and info["commit"] == COMMIT
    assert (info["source"], info["layers"], info["heads"]) == ("hub:org/bert", 1, 2)


def test_unpinned_hub_model_records_the_commit_it_got(tmp_path, fake_hub):
    info = materialise("hub:org/bert", tmp_path / "pretrained")
    assert fake_hub == [("model", "org/bert", None), ("tokenizer", "org/bert", None)]
    assert info["revision"] is None and info["commit"] == COMMIT


def test_revision_of_a_non_hub_model_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="^model.revision 'main': only hub: models"):
        materialise("tiny:1x2", tmp_path / "pretrained", revision="main")
