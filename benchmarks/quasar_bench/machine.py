"""What the numbers were measured on: CPU model, cores, ISA flags, clock, memory, library versions.

Read from ``/proc/cpuinfo`` and package metadata, without importing torch or onnxruntime, so that
the parent process stays small. The ISA flags matter for reading the results: ONNX Runtime's int8
kernels are several times faster with VNNI (``avx512_vnni`` / ``avx_vnni``) than with plain AVX2.
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

ISA_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16",
             "amx_tile", "amx_int8")
PACKAGES = {  # what we report -> distribution names to try
    "torch": ("torch",),
    "torchvision": ("torchvision",),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "opencv": ("opencv-python-headless", "opencv-python", "opencv-contrib-python-headless",
               "opencv-contrib-python"),
    "numpy": ("numpy",),
    "pillow": ("pillow", "Pillow"),
    "timm": ("timm",),
    "onnx": ("onnx",),
    "tensorrt": ("tensorrt", "tensorrt-cu12", "tensorrt-cu13"),
}


def cpuinfo(path: str = "/proc/cpuinfo") -> dict:
    """Model name, flags and current clock of the first CPU listed (Linux); empty values elsewhere."""
    out: dict = {"model": platform.processor() or platform.machine(), "flags": [], "mhz": None}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return out
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "model name" and out["model"] in (platform.processor(), platform.machine()):
            out["model"] = value
        elif key == "flags" and not out["flags"]:
            out["flags"] = value.split()
        elif key == "cpu MHz" and out["mhz"] is None:
            try:
                out["mhz"] = float(value)
            except ValueError:
                pass
    return out


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def mem_total_gib(path: str = "/proc/meminfo") -> float | None:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def package_version(names: tuple[str, ...]) -> str | None:
    for n in names:
        try:
            return metadata.version(n)
        except metadata.PackageNotFoundError:
            continue
    return None


def machine_info() -> dict:
    cpu = cpuinfo()
    flags = set(cpu["flags"])
    return {
        "cpu": cpu["model"],
        "cores": usable_cores(),
        "cpu_mhz": cpu["mhz"],
        "isa": [f for f in ISA_FLAGS if f in flags],
        "memory_gib": mem_total_gib(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "versions": {k: package_version(v) for k, v in PACKAGES.items()},
    }
