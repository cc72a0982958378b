"""Table 2: every compression method's labels against the true test labels, plus majority."""

import pandas as pd

from lotteryprune import compress, io, runtime

log = runtime.start(snakemake)
labels = {m: pd.read_parquet(path) for m, path in zip(snakemake.params.methods, snakemake.input.labels)}
table = compress.table2(labels, pd.read_parquet(snakemake.input.split))
io.write_csv(snakemake.output.table, table)
log.info("\n%s", table.to_string(index=False))
