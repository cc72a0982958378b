"""0-shot scores in [0,1] for both datasets, calibrated once on the labelled train split (rule zeroshot_calibrate)."""

import pandas as pd

from lotteryprune import io, runtime, zeroshot

log = runtime.start(snakemake)
emotions = zeroshot.load_emotions(snakemake.input.emotions)
split = pd.read_parquet(snakemake.input.split, columns=["id", "split"])  # ids of the train rows; no label is read
train_ids = split.loc[split["split"] == "train", "id"].astype(str)
raw = {name: pd.read_parquet(getattr(snakemake.input, name)) for name in ("labelled", "extra")}
scores, info = zeroshot.calibrate_datasets(snakemake.params.scorer, raw, "labelled", train_ids, emotions.columns)
for name, frame in scores.items():
    io.write_parquet(getattr(snakemake.output, name), frame)
io.write_json(snakemake.output.calibration, {**info, "config": {"scorer": snakemake.params.scorer}})
log.info("calibration: %s", info)
