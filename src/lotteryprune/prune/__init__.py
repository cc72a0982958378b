"""Pruning methods behind one interface: given a pretrained model, a lottery sample and a
rate, return a keep-mask over heads (or a weight mask).

A method is a module with ``run(task: PruneTask) -> PruneResult``. Adding one is adding a
module and a line in :data:`lotteryprune.config.METHODS` (plus its config section); the workflow, fine-tuning,
benchmarks and tables treat every method alike.
"""

from __future__ import annotations

import importlib

from ..config import METHODS  # name -> "module:function", torch-free so the config check can read it
from .score import score_mask
from .task import PruneResult, PruneTask


def get_method(name: str):
    try:
        target = METHODS[name]
    except KeyError:
        raise KeyError(f"unknown pruning method {name!r}; known: {sorted(METHODS)}") from None
    module, _, func = target.partition(":")
    return getattr(importlib.import_module(module), func)


def run_method(name: str, task: PruneTask) -> PruneResult:
    return get_method(name)(task)


from .cell import prune_cell  # noqa: E402  (uses run_method)

__all__ = ["METHODS", "PruneResult", "PruneTask", "get_method", "prune_cell", "run_method", "score_mask"]
