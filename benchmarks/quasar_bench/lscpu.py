"""The machine's CPU as ``lscpu`` states it: model name and the full flag list, for results files whose
numbers depend on the ISA (VNNI, AVX-512, AVX2). :func:`quasar.machine.machine_info` keeps only the ISA
flags it knows; this keeps them all, so an AVX2 run and a VNNI run can be told apart later."""

from __future__ import annotations

import platform
import subprocess


def lscpu() -> dict:
    """``{"model_name": ..., "flags": [...]}``; empty flags where ``lscpu`` is missing."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        text = ""
    fields = {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in text.splitlines()) if v}
    return {"model_name": fields.get("Model name", platform.processor()), "flags": fields.get("Flags", "").split()}


def isa_summary(flags: list[str]) -> str:
    """``avx512_vnni``, ``avx_vnni``, ``avx2`` or ``no avx2``: the int8 tier the CPU offers."""
    for f in ("avx512_vnni", "avx_vnni", "avx2"):
        if f in flags:
            return f
    return "no avx2"
