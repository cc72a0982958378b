"""Config facts the workflow needs while it builds the DAG: the pruning methods, which
``prune.*`` section each reads, and the checks the JSON schema cannot express.

Free of torch and pandas, so the Snakefile can import it while it builds the DAG.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

# method name -> "module:function", imported lazily by lotteryprune.prune.get_method (so
# one method's dependencies never block another); the keys are the valid method names.
METHODS: dict[str, str] = {
    "ga": "lotteryprune.prune.ga:run",
    "random": "lotteryprune.prune.baselines:run_random",
    "magnitude": "lotteryprune.prune.magnitude:run",  # paper 002: weights, global |w|, iterative
    "magnitude_heads": "lotteryprune.prune.baselines:run_magnitude_heads",  # ours: whole heads by mean |w|
    "importance": "lotteryprune.prune.baselines:run_importance",
    "entropy": "lotteryprune.prune.baselines:run_entropy",  # paper 003: lowest entropy first
    "sep": "lotteryprune.prune.baselines:run_sep",  # paper 003: lowest attention to [SEP] first
    "entropy_reversed": "lotteryprune.prune.baselines:run_entropy_reversed",  # highest first (docs/methods.md)
    "sep_reversed": "lotteryprune.prune.baselines:run_sep_reversed",  # highest first (docs/methods.md)
    "seven": "lotteryprune.prune.seven:run_weights",
    "seven_heads": "lotteryprune.prune.seven:run_heads",
    "mcap": "lotteryprune.prune.mcap:run",
    # beyond the paper (issue #18; config/beyond.yaml): Kwon et al. 2022 and the GA over heads + FFN
    "fisher": "lotteryprune.prune.fisher:run",  # heads + FFN neurons, FLOPs budget (unit flops)
    "fisher_heads": "lotteryprune.prune.fisher:run_heads",  # heads only, the GA's rate
    "ga_ffn": "lotteryprune.prune.ga_ffn:run",  # heads + FFN neuron groups, FLOPs budget (unit flops)
}

# methods whose config section has another name: variants share their family's section
SECTION_OF = {
    "entropy": "attention",
    "sep": "attention",
    "entropy_reversed": "attention",
    "sep_reversed": "attention",
    "seven_heads": "seven",
    "fisher_heads": "fisher",
}

# SEVEN's pruning window when prune.seven leaves it out (as lotteryprune.prune.seven reads it)
SEVEN_WINDOW_DEFAULT = {"start_frac": 0.1, "end_frac": 0.7}

REMOTE_PREFIXES = ("pypi:", "hub:", "http://", "https://")

DATASETS = ("labelled", "extra")


class ConfigError(ValueError):
    """A config value the schema lets through but the workflow cannot use; names the key."""


def format_rate(rate: float | int | str) -> str:
    """A selection rate as it appears in paths and wildcards: 5 -> "5", 0.5 -> "0.5"."""
    value = float(rate)
    if not value > 0:
        raise ValueError(f"selection rate must be positive, got {rate!r}")
    return f"{value:g}"


def load_config(*paths: str | Path) -> dict:
    """The config Snakemake builds from ``--configfile a b ...``: each file merged over the
    ones before it, key by key (for scripts that run outside the workflow)."""
    import yaml

    config: dict = {}
    for path in paths:
        stack = [(config, yaml.safe_load(Path(path).read_text()) or {})]
        while stack:
            base, add = stack.pop()
            for key, value in add.items():
                if isinstance(value, dict) and isinstance(base.get(key), dict):
                    stack.append((base[key], value))
                else:
                    base[key] = value
    return config


def method_params(config: dict, method: str) -> dict:
    """The method's own config section (``prune.<method>``, or the section it shares)."""
    prune = config["prune"]
    section = prune.get(method)
    if section is None:
        section = prune.get(SECTION_OF.get(method, method))
    return dict(section or {})


def search_seeds(config: dict, method: str) -> list[int]:
    """The seeds a method searches with, one mask each: ``prune.seeds``, except ``random``,
    whose masks are its ``prune.random.draws`` draws (seeds 0..draws-1)."""
    if method == "random":
        return list(range(int(method_params(config, "random")["draws"])))
    return [int(s) for s in config["prune"]["seeds"]]


def runs(config: dict, method: str) -> list[tuple[int, int]]:
    """(search seed, fine-tuning seed) of every run of a method: the i-th mask is fine-tuned
    with the i-th of ``finetune.seeds`` (cycling when a method has more masks than there
    are fine-tuning seeds, as random's draws may). The unpruned reference (``unpruned``)
    has no search: one run per fine-tuning seed, search seed -1."""
    tune = [int(s) for s in config["finetune"]["seeds"]]
    if method == "unpruned":
        return [(-1, s) for s in tune]
    return [(seed, tune[i % len(tune)]) for i, seed in enumerate(search_seeds(config, method))]


def local_source(source: str) -> str | None:
    """The file path a ``data.<dataset>.source`` names, or None for pypi:, hub: and URLs."""
    if source.startswith(REMOTE_PREFIXES):
        return None
    return os.path.expanduser(source)


def local_source_files(config: dict, dataset: str) -> list[str]:
    """The download rule's inputs: the local file ``data.<dataset>.source`` names, if any
    (so Snakemake reruns the download, and what follows, when that file changes)."""
    path = local_source(config["data"][dataset]["source"])
    return [] if path is None else [path]


def configfile_order(workflow) -> list[str]:
    """Snakemake's config files in the order they were merged: the Snakefile's
    ``configfile:`` first, then every ``--configfile`` in command-line order."""
    cli = [_shown(p) for p in workflow.overwrite_configfiles]
    loaded = [_shown(p) for p in workflow.configfiles]
    return [p for p in loaded if p not in cli] + cli


def _shown(path: str | Path) -> str:
    """A path as a user would write it: relative to the working directory when inside it."""
    path = Path(path)
    if path.is_absolute():
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return str(path)
    return str(path)


def check_config(config: dict, configfiles: list[str | Path] | None = None) -> None:
    """What the schema lets through but no run can use; raises ConfigError naming the key.

    ``configfiles``: the files merged into ``config``, first to last (see
    :func:`configfile_order`); with them, a source changed in one file whose checksum
    was written for another source in an earlier file is caught here, by name.
    """
    for key in ("prune", "finetune"):
        methods = (config.get(key) or {}).get("methods") or []
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            raise ConfigError(f"config {key}.methods: {unknown} not pruning methods; known: {sorted(METHODS)}")

    fractions = (config.get("data") or {}).get("split")
    if fractions:
        total = sum(float(fractions.get(k, 0)) for k in ("train", "valid", "test"))
        if abs(total - 1.0) > 1e-6:
            raise ConfigError(f"config data.split: fractions sum to {total:.6g}, not 1")

    seven = {**SEVEN_WINDOW_DEFAULT, **((config.get("prune") or {}).get("seven") or {})}
    start, end = seven["start_frac"], seven["end_frac"]
    if not (math.isfinite(start) and math.isfinite(end) and 0 <= start < end <= 1):
        raise ConfigError(
            f"config prune.seven: start_frac {start} must be before end_frac {end} (both in [0, 1]): "
            "the pruning window [start_frac, end_frac) of the training steps is empty"
        )

    model = config.get("model") or {}
    if model.get("revision") is not None and not str(model.get("source", "")).startswith("hub:"):
        raise ConfigError(
            f"config model.revision: {model['revision']!r} given, but model.source {model.get('source')!r} "
            "is not a hub: model; only hub models have revisions (set model.revision: null)"
        )
    for dataset in DATASETS:
        entry = (config.get("data") or {}).get(dataset) or {}
        if entry.get("revision") is not None and not str(entry.get("source", "")).startswith("hub:"):
            raise ConfigError(
                f"config data.{dataset}.revision: {entry['revision']!r} given, but data.{dataset}.source "
                f"{entry.get('source')!r} is not a hub: dataset; only hub datasets have revisions"
            )

    if configfiles:
        _check_checksums_belong_to_source(config, [str(p) for p in configfiles])


def _check_checksums_belong_to_source(config: dict, configfiles: list[str]) -> None:
    """A checksum is a claim about one source: when a later file changes ``source`` but
    not ``sha256`` / ``size``, the inherited values describe a file the user never named."""
    import yaml

    layers = []
    for path in configfiles:
        try:
            layers.append((path, yaml.safe_load(Path(path).read_text()) or {}))
        except OSError:
            continue  # Snakemake already read it; nothing to add
    for dataset in DATASETS:
        # per key: (layer index, file, value) of the last file that set it
        last: dict[str, tuple[int, str, object]] = {}
        source_at: list[object] = []  # the source as merged after each layer
        for i, (path, layer) in enumerate(layers):
            entry = ((layer.get("data") if isinstance(layer, dict) else None) or {}).get(dataset)
            if isinstance(entry, dict):
                for key in ("source", "sha256", "size"):
                    if key in entry:
                        last[key] = (i, path, entry[key])
            source_at.append(last["source"][2] if "source" in last else None)
        final = (config.get("data") or {}).get(dataset) or {}
        if "source" not in last or final.get("source") != last["source"][2]:
            continue  # set on the command line (--config): nothing to compare with
        src_index, src_file, source = last["source"]
        for key in ("sha256", "size"):
            if key not in last or last[key][2] is None or final.get(key) != last[key][2]:
                continue
            index, file, value = last[key]
            if index >= src_index or source_at[index] == source:
                continue
            raise ConfigError(
                f"config data.{dataset}.{key}: {src_file} sets data.{dataset}.source: {source} without its own "
                f"{key}; the {key} {value} comes from {file}, where it is that of {source_at[index]}, not of "
                f"{source}. Give {source}'s checksum beside its source (sha256: <64 hex digits, as `sha256sum` "
                f"prints>, size: <bytes>), or write `sha256: null` and `size: null` to accept the file "
                f"unverified (the download log warns and results/data/raw/{dataset}.provenance.json records "
                "verified: false)."
            )
