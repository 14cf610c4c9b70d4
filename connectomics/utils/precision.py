"""The float type a model computes in: float16 autocast on CUDA (``*.AMP``), bfloat16 autocast on a
CPU that has AMX-BF16 or AVX512-BF16 (``SYSTEM.CPU_BF16``), float32 otherwise.

Autocast runs convolutions and matrix products in the low-precision type; weights, losses and
the optimizer stay float32 (bfloat16 has float32's range, so no gradient scaler is needed).
"""
import contextlib

import torch

from connectomics.utils.cpu import cpu_flags

CPU_BF16_MODES = ("auto", "on", "off")
STAGE_DEFAULTS = {"train": "off", "inference": "auto"}  # what SYSTEM.CPU_BF16 "" means for each stage
BF16_FEATURES = ("amx_bf16", "avx512_bf16")


def stage_mode(cpu_bf16, stage):
    """The bfloat16 mode of ``stage`` ('train' / 'inference') for the ``SYSTEM.CPU_BF16`` value.

    '' (the default): training in float32 (the same weights on every CPU), inference in bfloat16
    where the CPU has it (1.8x the forward rate on AMX; maps within 2 uint8 levels: see
    ``benchmarks/bench_inference.py``); 'auto', 'on', 'off' set both stages ('off' forces float32).
    """
    if cpu_bf16 == "":
        return STAGE_DEFAULTS[stage]
    return cpu_bf16


def cpu_has_bf16(flags=None):
    """True if the CPU multiplies bfloat16 in hardware (AMX-BF16 or AVX512-BF16)."""
    flags = cpu_flags() if flags is None else flags
    return any(name in flags for name in BF16_FEATURES)


def autocast_dtype(device_type, amp=False, cpu_bf16="auto", flags=None):
    """``torch.float16`` (CUDA with ``amp``), ``torch.bfloat16`` (CPU: ``cpu_bf16`` 'on', or 'auto'
    with :func:`cpu_has_bf16`) or None (float32)."""
    if cpu_bf16 not in CPU_BF16_MODES:
        raise ValueError(f"CPU bfloat16 mode {cpu_bf16!r} not supported; valid: {', '.join(CPU_BF16_MODES)}")
    if device_type == "cuda":
        return torch.float16 if amp else None
    if cpu_bf16 == "on" or (cpu_bf16 == "auto" and cpu_has_bf16(flags)):
        return torch.bfloat16
    return None


def autocast(device_type, dtype):
    """Context that runs the model in ``dtype`` (None: float32, nothing changes)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=dtype)


def describe(device_type, dtype, cpu_bf16="auto"):
    """One line for the log: the type used and why."""
    if device_type == "cuda":
        return "float16 autocast (AMP)" if dtype is not None else "float32"
    if dtype is not None:
        why = "this CPU has " + "/".join(BF16_FEATURES).upper() if cpu_bf16 == "auto" else "SYSTEM.CPU_BF16 on"
        return f"bfloat16 autocast ({why})"
    if cpu_bf16 == "off":
        return "float32 (SYSTEM.CPU_BF16 off)"
    return "float32 (this CPU has neither AMX-BF16 nor AVX512-BF16; SYSTEM.CPU_BF16 on would emulate bfloat16, slowly)"
