"""Resolve model.source into one local checkpoint every later stage reads (rule pretrained_model)."""

import shutil
from pathlib import Path

from lotteryprune import io, runtime
from lotteryprune.model.sources import materialise

log = runtime.start(snakemake)
out = Path(snakemake.output.model)
tmp = out.with_name(out.name + ".partial")
shutil.rmtree(tmp, ignore_errors=True)
p = snakemake.params
info = materialise(p.source, tmp, seed=p.seed, revision=p.revision)
tmp.rename(out)  # a directory appears complete or not at all
log.info("model %s", info)
io.write_json(snakemake.output.info, info)
