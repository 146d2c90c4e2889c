"""``quasar export triton``: a Triton Inference Server model repository for a fused QUASAR model.

    OUT/
      quasar/                     (--name)
        config.pbtxt              platform, uint8 NHWC input, scores/margins outputs, dynamic batching
        1/model.onnx              the fused ONNX graph (onnxruntime), or 1/model.plan (a TensorRT engine)

* ``onnxruntime`` (an ``.onnx`` file): platform ``onnxruntime_onnx``; ``--accelerator tensorrt`` asks
  Triton's ONNX Runtime backend to run it through its TensorRT execution provider on GPUs.
* ``tensorrt`` (an engine from ``quasar export tensorrt``): platform ``tensorrt_plan``; the engine only
  runs on the GPU model and TensorRT version it was built with (its sidecar says which), and
  ``max_batch_size`` may not exceed its optimisation profile's batch.

Requests carry what the runtime feeds the model: the *preprocessed* uint8 NHWC image
(:meth:`quasar.runtime.Scorer.preprocess`, or :mod:`quasar.preprocess` with the spec recorded in
the config's parameters). Models with dynamic H/W (``native`` policy) get ``[-1, -1, 3]`` dims;
Triton's dynamic batcher only batches requests of identical shape, so a client that sends many
shapes gets small batches. Scores come back as ``scores`` and ``margins``, FP32 ``[K]`` per image,
K = the heads in ``parameters["quasar.heads"]`` order.

This writes and validates the files (the config parses with Triton's ``ModelConfig`` protobuf in the
tests); it has not been run against a live Triton server here.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from quasar.contract import INPUT_NAME, OUTPUT_NAMES, ModelInfo, parse_metadata
from quasar.errors import QuasarError
from quasar.sidecars import engine_metadata, engine_sidecar_path, is_engine_path, read_engine_sidecar

BACKENDS = ("onnxruntime", "tensorrt")
PLATFORMS = {"onnxruntime": ("onnxruntime_onnx", "model.onnx"), "tensorrt": ("tensorrt_plan", "model.plan")}


def read_info(model: str) -> ModelInfo:
    """The model's QUASAR metadata (an ONNX file checked as the runtime loads it, or an engine's sidecar);
    QuasarError (one line) if absent or the model was altered."""
    if not os.path.isfile(model):
        raise QuasarError(f"{model}: model file not found")
    if is_engine_path(model):
        return parse_metadata(engine_metadata(read_engine_sidecar(model), engine_sidecar_path(model)), model, "engine")
    from quasar.model_file import load_model_info  # the one loader: metadata, graph and digest checked

    return load_model_info(model)


def engine_max_batch(model: str) -> int | None:
    """The largest batch of an engine's optimisation profile (None if the sidecar does not say)."""
    try:
        return int(read_engine_sidecar(model)["profile"][INPUT_NAME]["max"][0])
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def input_dims(info: ModelInfo) -> list[int]:
    """Per-image dims (Triton adds the batch): ``[-1, -1, 3]`` for dynamic H/W, else ``[S, S, 3]``."""
    if info.dynamic_size:
        return [-1, -1, 3]
    return [info.spec.size, info.spec.size, 3]


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _string(s: str) -> str:
    """A protobuf text-format string literal: UTF-8 as is; quotes, backslashes and control
    characters escaped (octal for the controls, which every text-format parser reads)."""
    out = []
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\{ord(ch):03o}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def config_text(info: ModelInfo, *, name: str, backend: str, max_batch_size: int, preferred: list[int],
                queue_delay_us: int, instances: int, kind: str, accelerator: str | None = None) -> str:
    """``config.pbtxt`` (protobuf text format of Triton's ``ModelConfig``)."""
    platform, filename = PLATFORMS[backend]
    dims = ", ".join(str(d) for d in input_dims(info))
    k = info.num_heads
    params = {"quasar.heads": ",".join(info.heads), "quasar.summary_heads": ",".join(info.summary_heads),
              "quasar.preprocess": json.dumps(info.preprocess, sort_keys=True), "quasar.encoder": info.encoder,
              "quasar.precision": info.precision or "", "quasar.pack_hash": info.pack_hash or "",
              "quasar.source_model": os.path.basename(info.path)}
    lines = [
        f"# Written by `quasar export triton` from {os.path.basename(info.path)}; see quasar/export/triton.py.",
        f"name: {_string(name)}",
        f"platform: {_string(platform)}",
        f"default_model_filename: {_string(filename)}",
        f"max_batch_size: {max_batch_size}",
        "input [",
        "  {",
        f"    name: {_string(INPUT_NAME)}",
        "    data_type: TYPE_UINT8",
        "    format: FORMAT_NHWC",
        f"    dims: [ {dims} ]",
        "  }",
        "]",
        "output [",
    ]
    for i, out in enumerate(OUTPUT_NAMES):
        lines += ["  {", f"    name: {_string(out)}", "    data_type: TYPE_FP32", f"    dims: [ {k} ]",
                  "  }" + ("," if i < len(OUTPUT_NAMES) - 1 else "")]
    lines += [
        "]",
        "dynamic_batching {",
        f"  preferred_batch_size: [ {', '.join(str(b) for b in preferred)} ]",
        f"  max_queue_delay_microseconds: {queue_delay_us}",
        "}",
        "instance_group [",
        "  {",
        f"    count: {instances}",
        f"    kind: {'KIND_GPU' if kind == 'gpu' else 'KIND_CPU'}",
        "  }",
        "]",
    ]
    if accelerator == "tensorrt":
        lines += ["optimization {", "  execution_accelerators {", "    gpu_execution_accelerator: [",
                  "      { name: \"tensorrt\" }", "    ]", "  }", "}"]
    for key, value in params.items():
        lines += ["parameters {", f"  key: {_string(key)}", f"  value: {{ string_value: {_string(value)} }}", "}"]
    return "\n".join(lines) + "\n"


def write_repository(model: str | os.PathLike, out: str | os.PathLike, *, name: str = "quasar",
                     max_batch_size: int = 32, preferred: list[int] | None = None, queue_delay_us: int = 2000,
                     instances: int = 1, kind: str | None = None, accelerator: str | None = None,
                     version: int = 1, overwrite: bool = False) -> Path:
    """Write ``out/name/config.pbtxt`` and ``out/name/<version>/model.{onnx,plan}``; returns the model folder.

    The backend follows the file: an ``.onnx`` graph -> ``onnxruntime``, an engine -> ``tensorrt``.
    ``kind``: ``cpu`` or ``gpu`` instances (default: gpu for engines and the TensorRT accelerator, else cpu).
    """
    model = os.fspath(model)
    info = read_info(model)
    backend = "tensorrt" if info.kind == "engine" else "onnxruntime"
    if accelerator not in (None, "tensorrt"):
        raise QuasarError(f"unknown accelerator {accelerator!r}; expected tensorrt")
    if accelerator and backend != "onnxruntime":
        raise QuasarError("--accelerator applies to ONNX models (a TensorRT engine already is one)")
    kind = kind or ("gpu" if backend == "tensorrt" or accelerator else "cpu")
    if kind not in ("cpu", "gpu"):
        raise QuasarError(f"--kind must be cpu or gpu, not {kind!r}")
    if kind == "cpu" and (backend == "tensorrt" or accelerator):
        raise QuasarError("TensorRT runs on GPUs only: use --kind gpu")
    if max_batch_size < 1 or instances < 1 or version < 1 or queue_delay_us < 0:
        raise QuasarError("--max-batch-size, --instances and --version must be at least 1, --queue-delay-us at least 0")
    if backend == "tensorrt":
        cap = engine_max_batch(model)
        if cap is not None and max_batch_size > cap:
            raise QuasarError(f"{model}: the engine's profile takes batches of at most {cap}; "
                              f"use --max-batch-size {cap} or rebuild it with a larger --max-batch")
    preferred = sorted({b for b in (preferred or default_preferred(max_batch_size)) if 1 <= b <= max_batch_size})
    if not preferred:
        raise QuasarError(f"--preferred batch sizes must lie in 1..{max_batch_size}")
    if not name or "/" in name or name.startswith("."):
        raise QuasarError(f"--name {name!r} must be a plain folder name")
    folder = Path(out) / name
    if folder.exists() and not overwrite:
        raise QuasarError(f"{folder}: already exists; choose another OUT or --name, or pass --overwrite")
    text = config_text(info, name=name, backend=backend, max_batch_size=max_batch_size, preferred=preferred,
                       queue_delay_us=queue_delay_us, instances=instances, kind=kind, accelerator=accelerator)
    target = folder / str(version) / PLATFORMS[backend][1]
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model, target)
    (folder / "config.pbtxt").write_text(text, encoding="utf-8")
    return folder


def default_preferred(max_batch_size: int) -> list[int]:
    """Powers of two from 4 up to ``max_batch_size`` (and it), what GPUs batch well."""
    sizes, b = [], 4
    while b < max_batch_size:
        sizes.append(b)
        b *= 2
    return [*sizes, max_batch_size]
