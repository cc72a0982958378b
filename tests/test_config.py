"""Both shipped configs validate; a typo or a wrong type stops with the key's name."""

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = str(ROOT / "config" / "schema.yaml")


def _load(name):
    return yaml.safe_load((ROOT / "config" / name).read_text())


def _merged(overlay):
    base = _load("config.yaml")

    def merge(a, b):
        for k, v in b.items():
            a[k] = merge(a.get(k, {}), v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
        return a

    return merge(copy.deepcopy(base), _load(overlay))


@pytest.mark.parametrize("config", ["config.yaml", "paper.yaml", "tiny.yaml"])
def test_shipped_configs_validate(config):
    validate(_merged(config) if config != "config.yaml" else _load(config), SCHEMA)


def test_typo_names_the_key():
    config = _load("config.yaml")
    config["prune"]["ga"]["populaton"] = 10
    with pytest.raises(Exception, match="populaton"):
        validate(config, SCHEMA)


def test_wrong_type_names_the_key():
    config = _load("config.yaml")
    config["prune"]["rates"] = ["seventy"]
    with pytest.raises(Exception, match="rates"):
        validate(config, SCHEMA)


def test_emotions_file_has_twenty_each_and_unhappy():
    emotions = _load("emotions.yaml")
    assert len(emotions["positive"]) == 20 and len(emotions["negative"]) == 20
    assert "unhappy" in emotions["negative"] and emotions["source"]
    assert not set(emotions["positive"]) & set(emotions["negative"])
