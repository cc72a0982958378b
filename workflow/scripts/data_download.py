"""Fetch one dataset's raw file and verify its size and sha256 before anything reads it (rule download)."""

from lotteryprune import data, io, runtime

log = runtime.start(snakemake)
p = snakemake.params
record = data.fetch(p.source, snakemake.output.raw, sha256=p.sha256, size=p.size, revision=p.revision)
if "warning" in record:
    log.warning(record["warning"])
log.info("fetched %s", record)
io.write_json(snakemake.output.provenance, record)
