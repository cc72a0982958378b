"""Which device and which inference dtype a job uses."""

from __future__ import annotations

import torch

DTYPES = ("float32", "bfloat16", "auto")


def inference_dtype(preference: str, device) -> torch.dtype:
    """The dtype for inference: ``float32``, ``bfloat16``, or ``auto``.

    ``auto`` is bfloat16 where the hardware multiplies bf16 natively (a CUDA GPU that
    supports it; a CPU with AMX tiles or AVX512-BF16, where oneDNN runs bf16 GEMMs several
    times faster than fp32) and float32 elsewhere, since emulated bf16 is slower than fp32.
    """
    if preference not in DTYPES:
        raise ValueError(f"dtype {preference!r} is not one of {DTYPES}")
    if preference != "auto":
        return getattr(torch, preference)
    device = torch.device(device)
    if device.type == "cuda":
        # Ask this very device (``cuda`` alone: the current one), and only for native bf16
        # (compute capability 8.0, Ampere, on): torch.cuda.is_bf16_supported() asks the
        # current device whichever was given, and counts emulated bf16 (V100, T4) as support.
        native = bool(torch.version.hip) or torch.cuda.get_device_capability(device)[0] >= 8
        return torch.bfloat16 if native else torch.float32
    try:  # private probes, present in torch >= 2.3; absent means "don't know", so float32
        native = torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
    except (AttributeError, RuntimeError):
        native = False
    return torch.bfloat16 if native else torch.float32


def pick_device(preference: str = "auto") -> torch.device:
    """``cuda`` (no index: the current device, the first the job sees, e.g. the GPU SLURM
    put in CUDA_VISIBLE_DEVICES) for ``cuda``, and for ``auto`` when CUDA is available;
    ``cpu`` otherwise."""
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")
