"""Fine-tune every run of one cell (rule finetune) or of the unpruned reference (rule
finetune_reference): metrics, test predictions, and with finetune.save_model the models."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from lotteryprune import finetune, io, runtime
from lotteryprune.metrics import METRICS
from lotteryprune.model.heads import load_mask_set, mask_set_unit
from lotteryprune.model.sources import load_tokenizer

log = runtime.start(snakemake)
p = snakemake.params
wc = snakemake.wildcards
split = pd.read_parquet(snakemake.input.split)
masks = load_mask_set(snakemake.input.masks) if "masks" in snakemake.input.keys() else None
augment = None
if wc.augmentation != "none":
    augment = finetune.augmented_set(
        split, pd.read_parquet(snakemake.input.extra), pd.read_parquet(snakemake.input.labels)
    )
models = snakemake.output.get("models")
staging = None
if models:  # written beside the final directory, renamed into place once every model is saved
    staging = Path(models).with_name(Path(models).name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
runs, predictions = finetune.run_cell(
    snakemake.input.model,
    split,
    runs=[tuple(r) for r in p.runs],
    masks=masks,
    augment=augment,
    augment_section=dict(p.augment),
    train_section=dict(p.train),
    max_length=p.max_length,
    dtype=p.dtype,
    device=runtime.device({"device": p.device}),
    save_dir=staging,
    tokenizer=load_tokenizer(snakemake.input.model) if staging else None,
)
if staging is not None:  # every model saved: the directory appears complete or not at all
    shutil.rmtree(models, ignore_errors=True)
    staging.rename(models)
unit = mask_set_unit(snakemake.input.masks) if masks else "heads"  # heads | weights | flops
io.write_parquet(snakemake.output.predictions, predictions)
io.write_json(
    snakemake.output.metrics,
    {
        "method": wc.get("method", "unpruned"),
        "selection": wc.get("selection"),
        "rate": int(wc.get("rate", 0)),
        "augmentation": wc.augmentation,
        "unit": unit,
        "metric": p.metric,
        "test": {k: float(np.mean([r["test"][k] for r in runs])) for k in METRICS},
        "runs": runs,
        "masks": snakemake.input.get("masks"),
    },
)
log.info("%d runs, mean test %s %.4f", len(runs), p.metric, np.mean([r["test"][p.metric] for r in runs]))
