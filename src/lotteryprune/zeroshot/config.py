"""The 0-shot stage's settings (config section ``zeroshot``)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..model.device import DTYPES, inference_dtype

SCORERS = ("nsp", "similarity")


@dataclass
class ZeroShotConfig:
    """Config section ``zeroshot`` plus ``model.max_length``; no field has a default."""

    scorer: str  # nsp | similarity
    template: str  # "This example is {label}."
    batch_size: int  # nsp: (text, hypothesis) pairs per forward pass; similarity: texts per pass
    chunk_size: int  # texts per resumable chunk
    max_length: int  # tokens of the whole input (nsp: the pair; similarity: the text)
    dtype: str  # float32 | bfloat16 | auto (bf16 where the hardware runs it natively)

    @classmethod
    def from_dict(cls, d: dict, **overrides) -> ZeroShotConfig:
        known = set(cls.__dataclass_fields__)
        values = {**d, **overrides}
        unknown = set(values) - known
        if unknown:
            raise KeyError(f"config zeroshot: unknown keys {sorted(unknown)}")
        missing = sorted(known - set(values))
        if missing:
            raise KeyError(f"config zeroshot: missing keys {missing}")
        cfg = cls(**values)
        if cfg.scorer not in SCORERS:
            raise ValueError(f"zeroshot.scorer: {cfg.scorer!r} is not one of {SCORERS}")
        if "{label}" not in cfg.template:
            raise ValueError(f"zeroshot.template: {cfg.template!r} has no {{label}} placeholder")
        if cfg.dtype not in DTYPES:
            raise ValueError(f"zeroshot.dtype: {cfg.dtype!r} is not one of {DTYPES}")
        return cfg

    def resolved(self, device) -> ZeroShotConfig:
        """This config with ``dtype: auto`` replaced by what it means on ``device``.

        The resumable chunks' fingerprint is taken of the resolved config, so chunks scored
        in one precision are never mixed with chunks scored in another.
        """
        return replace(self, dtype=str(inference_dtype(self.dtype, device)).removeprefix("torch."))
