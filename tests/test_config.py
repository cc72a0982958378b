"""Both shipped configs validate; a typo, a wrong type, an out-of-range value or a value the
schema cannot judge (fractions, windows, checksums of another file) stops with the key's
name. Overlays are merged by Snakemake's own function; what the merge must give is
written out by hand."""

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from snakemake.utils import update_config, validate

from lotteryprune.config import METHODS, ConfigError, check_config, configfile_order, local_source

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = str(ROOT / "config" / "schema.yaml")
BASE = str(ROOT / "config" / "config.yaml")
VADER_SHA = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
BERT_COMMIT = "86b5e0934494bd15c9632b12f734a8a67f723594"


def _load(name):
    return yaml.safe_load((ROOT / "config" / name).read_text())


def _merged(*overlays):
    """The config as Snakemake builds it: config.yaml, then each overlay (snakemake's merge)."""
    config = _load("config.yaml")
    for overlay in overlays:
        update_config(config, _load(overlay) if isinstance(overlay, str) else overlay)
    return config


@pytest.mark.parametrize("overlay", [None, "paper.yaml", "tiny.yaml"])
def test_shipped_configs_validate_and_pass_the_checks(overlay):
    config = _merged(overlay) if overlay else _load("config.yaml")
    validate(config, SCHEMA)
    check_config(config, [BASE] + ([str(ROOT / "config" / overlay)] if overlay else []))


def test_paper_overlay_merges_key_by_key():
    config = _merged("paper.yaml")
    assert config["model"] == {"source": "hub:bert-base-uncased", "revision": BERT_COMMIT, "max_length": 128}
    assert config["data"]["labelled"]["format"] == "sentiment140"
    assert config["data"]["labelled"]["sha256"] == "004a3772c8a7ff9bbfeb875880f47f0679d93fc63e5cf9cff72d54a8a6162e57"
    assert config["select"]["umap"] == {"n_neighbors": 15, "min_dist": 0.1}  # not in paper.yaml: kept from config.yaml
    # paper.yaml names epochs and the window; a1, a2, eps and include_pooler come from config.yaml
    assert config["prune"]["seven"] == {
        "a1": 0.8,
        "a2": 0.8,
        "eps": 1.0e-9,
        "epochs": 10,
        "start_frac": 0.0475,
        "end_frac": 0.2375,
        "include_pooler": True,
    }


def test_tiny_overlay_keeps_the_default_data_sources():
    config = _merged("tiny.yaml")
    assert config["data"]["labelled"] == {
        "format": "vader_tweets",
        "source": "pypi:vaderSentiment==3.3.2",
        "sha256": VADER_SHA,
        "size": 2466783,
    }
    assert config["data"]["max_labelled"] == 240 and config["model"]["source"] == "tiny:2x4"


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


@pytest.mark.parametrize(
    "path, value",
    [
        (("seed",), -1),
        (("data", "split", "train"), 1.5),
        (("data", "split", "valid"), 0),
        (("data", "labelled", "size"), 0),
        (("data", "labelled", "sha256"), "not-a-hash"),
        (("data", "max_labelled"), 5),
        (("prune", "rates"), [150]),
        (("prune", "ga", "drop_frac"), 0.9),
        (("prune", "seven", "end_frac"), 1.5),
        (("finetune", "seeds"), [0, 0]),
        (("report", "collapse"), 0.4),
        (("metric",), "f2"),
        (("model", "revision"), "two words"),
        (("report", "reference_rate"), 100),
    ],
)
def test_out_of_range_value_names_the_key(path, value):
    config = _load("config.yaml")
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    where = "".join(f"['{k}']" for k in path)
    with pytest.raises(Exception) as err:
        validate(config, SCHEMA)
    assert f"On instance{where}" in str(err.value)


def test_split_fractions_must_sum_to_one():
    config = _load("config.yaml")
    config["data"]["split"] = {"train": 0.7, "valid": 0.2, "test": 0.15}
    validate(config, SCHEMA)  # each fraction is in range: only the sum is wrong
    with pytest.raises(ConfigError) as err:
        check_config(config)
    assert str(err.value) == "config data.split: fractions sum to 1.05, not 1"


@pytest.mark.parametrize(
    "window", [{"start_frac": 0.7, "end_frac": 0.3}, {"start_frac": 0.5, "end_frac": 0.5}, {"end_frac": 0.05}]
)
def test_seven_window_must_not_be_empty(window):
    config = _load("config.yaml")
    config["prune"]["seven"] = {
        k: v for k, v in config["prune"]["seven"].items() if k not in ("start_frac", "end_frac")
    }
    config["prune"]["seven"].update(window)
    validate(config, SCHEMA)
    with pytest.raises(ConfigError, match=r"^config prune\.seven: start_frac .* must be before end_frac"):
        check_config(config)


def test_finetune_methods_must_be_pruning_methods():
    config = _load("config.yaml")
    config["finetune"]["methods"] = ["ga", "lottery"]
    with pytest.raises(ConfigError, match=r"^config finetune\.methods: \['lottery'\] not pruning methods"):
        check_config(config)


def test_method_names_live_in_one_place():
    """lotteryprune.config.METHODS is the one list: the schema checks only the shape of a
    name, check_config checks it is a method, and every listed method resolves to code."""
    from lotteryprune.prune import get_method

    schema = yaml.safe_load(Path(SCHEMA).read_text())
    assert "enum" not in str(schema["$defs"]["methods"]) and "enum" not in str(
        schema["properties"]["finetune"]["properties"]["methods"]
    )
    for name in METHODS:
        assert callable(get_method(name)), name
    config = _load("config.yaml")
    config["prune"]["methods"] = ["ga", "gaa"]
    with pytest.raises(ConfigError, match="gaa"):
        check_config(config)


def test_config_module_stays_torch_free():
    code = "import sys, lotteryprune.config; assert 'torch' not in sys.modules and 'pandas' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_revision_only_for_hub_sources():
    config = _load("config.yaml")
    config["model"]["revision"] = BERT_COMMIT
    with pytest.raises(ConfigError, match=r"^config model\.revision: .* only hub models have revisions"):
        check_config(config)
    config = _merged("paper.yaml")
    config["data"]["labelled"]["revision"] = "main"
    with pytest.raises(
        ConfigError, match=r"^config data\.labelled\.revision: 'main' given, but data\.labelled\.source"
    ):
        check_config(config)
    config["data"]["labelled"].update(source="hub:stanfordnlp/sentiment140", sha256=None, size=None)
    check_config(config)


# --------------------------------------------------------------------------- checksums of another file


def _overlay(tmp_path, name, values):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(values))
    return str(path)


def test_changed_source_without_its_checksum_says_so(tmp_path):
    overlay = _overlay(tmp_path, "mine.yaml", {"data": {"labelled": {"source": "/data/my.csv"}}})
    config = _merged(yaml.safe_load(Path(overlay).read_text()))
    validate(config, SCHEMA)
    with pytest.raises(ConfigError) as err:
        check_config(config, [BASE, overlay])
    message = str(err.value)
    assert message.startswith(
        f"config data.labelled.sha256: {overlay} sets data.labelled.source: /data/my.csv without its own sha256"
    )
    assert f"the sha256 {VADER_SHA} comes from {BASE}, where it is that of pypi:vaderSentiment==3.3.2" in message
    assert "`sha256: null` and `size: null`" in message and "verified: false" in message


def test_changed_source_with_null_checksum_or_its_own_passes(tmp_path):
    unverified = {"data": {"labelled": {"source": "/data/my.csv", "sha256": None, "size": None}}}
    path = _overlay(tmp_path, "a.yaml", unverified)
    check_config(_merged(unverified), [BASE, path])
    own = {"data": {"labelled": {"source": "/data/my.csv", "sha256": "a" * 64, "size": 10}}}
    path = _overlay(tmp_path, "b.yaml", own)
    check_config(_merged(own), [BASE, path])
    same = {"data": {"labelled": {"source": "pypi:vaderSentiment==3.3.2"}}}  # the same source, repeated
    path = _overlay(tmp_path, "c.yaml", same)
    check_config(_merged(same), [BASE, path])


def test_null_sha256_with_a_stale_size_names_size(tmp_path):
    values = {"data": {"extra": {"source": "/data/snippets.tar.gz", "sha256": None}}}
    path = _overlay(tmp_path, "mine.yaml", values)
    with pytest.raises(ConfigError, match=r"^config data\.extra\.size: .* the size 2466783 comes from"):
        check_config(_merged(values), [BASE, path])


def test_checksum_from_paper_overlay_is_not_inherited_by_a_third_file(tmp_path):
    paper = str(ROOT / "config" / "paper.yaml")
    values = {"data": {"labelled": {"source": "/data/trainingandtestdata.zip"}}}
    path = _overlay(tmp_path, "site.yaml", values)
    with pytest.raises(ConfigError) as err:
        check_config(_merged("paper.yaml", values), [BASE, paper, path])
    assert (
        f"comes from {paper}, where it is that of https://cs.stanford.edu/people/alecmgo/trainingandtestdata.zip"
        in str(err.value)
    )


def test_configfile_order_is_snakemakes_merge_order():
    workflow = SimpleNamespace(
        configfiles=["a.yaml", "b.yaml", "config/config.yaml"], overwrite_configfiles=["a.yaml", "b.yaml"]
    )
    assert configfile_order(workflow) == ["config/config.yaml", "a.yaml", "b.yaml"]
    workflow = SimpleNamespace(configfiles=["config/config.yaml"], overwrite_configfiles=[])
    assert configfile_order(workflow) == ["config/config.yaml"]


@pytest.mark.parametrize(
    "source, path",
    [
        ("pypi:vaderSentiment==3.3.2", None),
        ("hub:google/civil_comments", None),
        ("https://x/y.zip", None),
        ("/data/my.csv", "/data/my.csv"),
        ("data/my.csv", "data/my.csv"),
    ],
)
def test_local_source(source, path):
    assert local_source(source) == path


def test_emotions_file_has_twenty_each_and_unhappy():
    emotions = _load("emotions.yaml")
    assert len(emotions["positive"]) == 20 and len(emotions["negative"]) == 20
    assert "unhappy" in emotions["negative"] and emotions["source"]
    assert not set(emotions["positive"]) & set(emotions["negative"])


def test_load_config_merges_like_snakemake(tmp_path):
    """Scripts outside the workflow (benchmarks/) read --configfile a b as Snakemake does."""
    import yaml
    from snakemake.utils import update_config

    from lotteryprune.config import load_config

    root = Path(__file__).resolve().parents[1] / "config"
    expected = yaml.safe_load((root / "config.yaml").read_text())
    for overlay in ("paper.yaml", "beyond.yaml"):
        update_config(expected, yaml.safe_load((root / overlay).read_text()))
    assert load_config(root / "config.yaml", root / "paper.yaml", root / "beyond.yaml") == expected
    assert load_config(root / "config.yaml", root / "paper.yaml")["prune"]["seven"]["a1"] == 0.8  # kept, not replaced
