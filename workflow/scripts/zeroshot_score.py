"""Raw 0-shot scores of one dataset, in resumable chunks (rule zeroshot)."""

from lotteryprune import io, runtime, zeroshot
from lotteryprune.resume import WorkDir

log = runtime.start(snakemake)
p = snakemake.params
device = runtime.device({"device": p.device})
cfg = zeroshot.ZeroShotConfig.from_dict(p.zeroshot, max_length=p.max_length).resolved(device)
emotions = zeroshot.load_emotions(snakemake.input.emotions)
ids, texts = zeroshot.read_texts(snakemake.input.texts)
log.info(
    "%s scorer on %s in %s: %d texts x %d hypotheses", cfg.scorer, device, cfg.dtype, len(texts), len(emotions.columns)
)
scorer = zeroshot.make_scorer(snakemake.input.model, emotions, cfg, device=device)
work = WorkDir(p.workdir, zeroshot.fingerprint(cfg, emotions, snakemake.input.model, ids, texts))
frame, info = zeroshot.score_dataset(scorer, ids, texts, chunk_size=cfg.chunk_size, workdir=work)
io.write_parquet(snakemake.output.raw, frame)
io.write_json(
    snakemake.output.info,
    {**info, "device": device, "dtype": cfg.dtype, "config": {"zeroshot": p.zeroshot, "max_length": p.max_length}},
)
work.clear()  # the raw parquet is the cache now
log.info("done: %s", info)
