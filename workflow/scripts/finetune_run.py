import os

import pandas as pd

from lotteryprune import finetune, io, runtime
from lotteryprune.model.training import TrainConfig
from lotteryprune.model.heads import load_masks, save_pruned
from lotteryprune.model.sources import load_tokenizer

log = runtime.start(snakemake)
p = snakemake.params
wc = snakemake.wildcards
seed = int(wc.seed)
split = pd.read_parquet(snakemake.input.split)
head_keep = weight_masks = None
if "mask" in snakemake.input.keys():
    head_keep, weight_masks = load_masks(snakemake.input.mask)
augment = None
if wc.augmentation != "none":
    augment = finetune.augmented_set(
        split, pd.read_parquet(snakemake.input.extra), pd.read_parquet(snakemake.input.labels)
    )
augment_cfg = TrainConfig.from_dict(dict(p.augment), max_length=p.max_length, seed=seed)
train_cfg = TrainConfig.from_dict(dict(p.train), max_length=p.max_length, seed=seed)
model, metrics = finetune.run(
    snakemake.input.model,
    split,
    head_keep=head_keep,
    weight_masks=weight_masks,
    augment=augment,
    augment_cfg=augment_cfg,
    train_cfg=train_cfg,
    device=runtime.device({"device": p.device}),
)
if p.save_model:
    out = os.path.join(os.path.dirname(snakemake.output.metrics), "model")
    save_pruned(model, load_tokenizer(snakemake.input.model), out)
metrics.update(
    {
        "method": wc.get("method", "unpruned"),
        "selection": wc.get("selection"),
        "rate": int(wc.get("rate", 0)),
        "augmentation": wc.augmentation,
        "seed": seed,
        "mask": snakemake.input.get("mask"),
        "unit": "weights" if weight_masks else "heads",
        "config": {"augment": augment_cfg.to_dict(), "train": train_cfg.to_dict()},
    }
)
io.write_json(snakemake.output.metrics, metrics)
