"""Pruning methods behind one interface: given a pretrained model, a lottery sample and a
rate, return a keep-mask over heads (or a weight mask).

A method is a module with ``run(task: PruneTask) -> PruneResult``. Adding one is adding a
module and a line in :data:`METHODS` (plus its config section); the workflow, fine-tuning,
benchmarks and tables treat every method alike.
"""

from __future__ import annotations

import importlib

from .score import score_mask
from .task import PruneResult, PruneTask

# method name -> "module:function" (imported lazily so one method's deps never block another)
METHODS: dict[str, str] = {
    "ga": "lotteryprune.prune.ga:run",
    "random": "lotteryprune.prune.baselines:run_random",
    "magnitude": "lotteryprune.prune.baselines:run_magnitude",
    "importance": "lotteryprune.prune.baselines:run_importance",
    "entropy": "lotteryprune.prune.baselines:run_entropy",
    "sep": "lotteryprune.prune.baselines:run_sep",
    "seven": "lotteryprune.prune.seven:run_weights",
    "seven_heads": "lotteryprune.prune.seven:run_heads",
    "mcap": "lotteryprune.prune.mcap:run",
}


def get_method(name: str):
    try:
        target = METHODS[name]
    except KeyError:
        raise KeyError(f"unknown pruning method {name!r}; known: {sorted(METHODS)}") from None
    module, _, func = target.partition(":")
    return getattr(importlib.import_module(module), func)


def run_method(name: str, task: PruneTask) -> PruneResult:
    return get_method(name)(task)


__all__ = ["METHODS", "PruneResult", "PruneTask", "get_method", "run_method", "score_mask"]
