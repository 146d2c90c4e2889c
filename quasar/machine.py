"""What the numbers were measured on: CPU model, cores, ISA flags, clock, memory, GPUs, library versions.

Read from ``/proc/cpuinfo``, ``nvidia-smi`` (when installed) and package metadata, without importing
torch or onnxruntime, so that the parent process stays small. Shared by ``quasar perf`` and the
benchmarks in ``benchmarks/`` (which import it from here). The ISA flags matter for reading the results: ONNX Runtime's int8
kernels are several times faster with VNNI (``avx512_vnni`` / ``avx_vnni``) than with plain AVX2.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
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
    "mlcommons-loadgen": ("mlcommons-loadgen", "mlcommons_loadgen"),
    "matplotlib": ("matplotlib",),
}
GPU_QUERY = "name,memory.total,driver_version"


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


def gpus(timeout: float = 10.0) -> list[dict]:
    """NVIDIA GPUs as ``nvidia-smi`` lists them (name, memory MiB, driver); empty without one."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        r = subprocess.run([exe, f"--query-gpu={GPU_QUERY}", "--format=csv,noheader,nounits"],
                           capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return []
    out = []
    for line in r.stdout.splitlines() if r.returncode == 0 else []:
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            try:
                mem = int(float(parts[1]))
            except ValueError:
                mem = None
            out.append({"name": parts[0], "memory_mib": mem, "driver": parts[2]})
    return out


def current_gpu(device: int = 0) -> dict[str, str] | None:
    """``{"name", "compute_capability"}`` of CUDA device ``device``, or None without one.

    Tries cuda-python, then torch if it is already imported (this module never imports it), then
    ``nvidia-smi``, so that it works wherever TensorRT does.
    """
    try:
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart
        err, props = cudart.cudaGetDeviceProperties(device)
        if int(err) == 0:
            name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
            return {"name": name.strip("\x00 "), "compute_capability": f"{props.major}.{props.minor}"}
    except Exception:
        pass
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_available() and device < torch.cuda.device_count():
            major, minor = torch.cuda.get_device_capability(device)
            return {"name": torch.cuda.get_device_name(device), "compute_capability": f"{major}.{minor}"}
    except Exception:
        pass
    try:
        r = subprocess.run(["nvidia-smi", f"--id={device}", "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=30)
        if r.returncode == 0 and r.stdout.strip():
            name, cc = (s.strip() for s in r.stdout.strip().splitlines()[0].rsplit(",", 1))
            return {"name": name, "compute_capability": cc}
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    return None


def current_platform(trt_version: str, device: int = 0) -> dict[str, str | None]:
    """What an engine built or loaded here depends on: TensorRT version, GPU name, compute capability."""
    gpu = current_gpu(device) or {}
    return {"tensorrt_version": str(trt_version), "gpu_name": gpu.get("name"),
            "compute_capability": gpu.get("compute_capability")}


def machine_info() -> dict:
    cpu = cpuinfo()
    flags = set(cpu["flags"])
    return {
        "cpu": cpu["model"],
        "cores": usable_cores(),
        "cpu_mhz": cpu["mhz"],
        "isa": [f for f in ISA_FLAGS if f in flags],
        "memory_gib": mem_total_gib(),
        "gpus": gpus(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "versions": {k: package_version(v) for k, v in PACKAGES.items()},
    }
