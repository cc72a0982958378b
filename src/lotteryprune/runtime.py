"""Run-time plumbing for the workflow scripts: log file, threads, device, config echo.

Scripts call :func:`start` first; it sends Python logging, warnings and tqdm bars (which
write to stderr) to the rule's ``log:`` file, so every rule writes a log.
"""

from __future__ import annotations

import logging
import os
import sys


def start(snakemake, name: str | None = None) -> logging.Logger:
    log_path = snakemake.log[0] if len(snakemake.log) else None
    if log_path:
        os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
        stream = open(log_path, "a", buffering=1)
        sys.stderr = stream
        sys.stdout = stream
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    logging.captureWarnings(True)
    threads = max(1, int(getattr(snakemake, "threads", 1) or 1))
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    logger = logging.getLogger(name or snakemake.rule)
    logger.info("rule %s, wildcards %s, threads %d", snakemake.rule, dict(snakemake.wildcards.items()), threads)
    return logger


def device(config: dict) -> str:
    from .modeling import pick_device

    return str(pick_device(config.get("device", "auto")))
