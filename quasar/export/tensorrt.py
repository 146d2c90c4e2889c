"""TensorRT engine from a fused ONNX graph, with a JSON sidecar that says what it was built for.

**Not yet run**: no TensorRT or CUDA code in this project has run yet (no GPU was available); this
module is written against the documented TensorRT 10 and 11 Python APIs, and the behaviour below is
what it is designed to do, not what a test has shown. ``bash .ci/gpu`` on a machine with an NVIDIA
GPU verifies it. ``tensorrt`` is imported lazily, only here. As designed:

* TensorRT 10 ("weak typing"): ``--fp16`` / ``--int8`` set builder flags. int8 means explicit
  quantisation: the graph must be the QDQ model from ``quasar export onnx --precision int8``
  (implicit calibration is deprecated in 10 and gone in 11).
* TensorRT 11 removed the precision flags: every network is strongly typed and precision comes from
  the graph, so build from the fp16 or int8 ONNX export. ``--fp16`` on an fp32 graph is refused with
  that advice instead of silently building fp32.
* An fp16 graph is always built strongly typed (its types are the point).

An engine only runs on the TensorRT version and GPU architecture it was built for, and silently
building for the wrong profile is the commonest deployment bug; hence the sidecar
(``model.engine.json``: TensorRT version, GPU name and compute capability, source ONNX sha256 and
metadata, optimisation profile, engine sha256; format in :mod:`quasar.contract`), which the runtime's
TensorRT backend compares with the machine before it loads the engine
(:func:`quasar.sidecars.check_engine`), naming every mismatch. Running engines is the runtime's job
(:class:`quasar.runtime.backends.tensorrt.TensorRTBackend`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from quasar.contract import INPUT_NAME, ModelInfo
from quasar.errors import QuasarError
from quasar.export.metadata import load_info, read_onnx_metadata
from quasar.machine import current_platform
from quasar.sidecars import engine_sidecar, engine_sidecar_path

DEFAULT_WORKSPACE_GIB = 4.0


def import_tensorrt():
    """``tensorrt`` or a one-line :class:`QuasarError` saying how to get it."""
    from quasar.extras import MissingExtra, require

    try:
        return require("tensorrt", "tensorrt", "a TensorRT engine (building or loading one)")
    except MissingExtra as e:
        raise MissingExtra(f"{e} (needs an NVIDIA GPU and driver)") from None


def trt_major(trt) -> int:
    return int(str(trt.__version__).split(".")[0])


def has_precision_flags(trt) -> bool:
    """TensorRT <= 10 has BuilderFlag.FP16/INT8 (weak typing); 11 removed them."""
    return hasattr(trt.BuilderFlag, "FP16") and hasattr(trt.BuilderFlag, "INT8")


# --------------------------------------------------------------------------- optimisation profile


@dataclass(frozen=True)
class ShapeProfile:
    """min/opt/max input shapes (N, H, W, 3) of the one optimisation profile an engine is built with."""

    min: tuple[int, int, int, int]
    opt: tuple[int, int, int, int]
    max: tuple[int, int, int, int]

    def __post_init__(self) -> None:
        for k in range(4):
            if not (0 < self.min[k] <= self.opt[k] <= self.max[k]):
                raise QuasarError(f"profile needs 0 < min <= opt <= max in every dimension; got min={self.min} "
                                  f"opt={self.opt} max={self.max}")

    def contains(self, shape: tuple[int, ...]) -> bool:
        return len(shape) == 4 and all(lo <= s <= hi for lo, s, hi in zip(self.min, shape, self.max, strict=True))

    def to_dict(self) -> dict:
        return {k: list(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> ShapeProfile:
        return cls(tuple(d["min"]), tuple(d["opt"]), tuple(d["max"]))


def _up(v: float, m: int) -> int:
    return max(m, -(-int(round(v)) // m) * m)


def _down(v: float, m: int) -> int:
    return max(m, int(v) // m * m)


def make_profile(info: ModelInfo, input_hw: tuple[int | str, int | str], *, min_batch: int = 1,
                 opt_batch: int = 8, max_batch: int = 32, min_side: int | None = None, max_side: int | None = None,
                 opt_hw: tuple[int, int] | None = None, fixed_batch: int | None = None) -> ShapeProfile:
    """The profile for a graph: batch as given (the graph's own for a static graph with a fixed batch);
    H/W fixed for fixed-size graphs, else from the spec.

    For native-resolution specs an image's sides lie in [min_size, size] (the long side is capped at
    ``size``), so that is the default range; ``opt`` is a 4:3 landscape at the cap, the commonest photo.
    Images outside the profile must go to another backend; ``max_side`` can raise it.
    """
    batch = (fixed_batch,) * 3 if fixed_batch else (min_batch, opt_batch, max_batch)
    if not info.dynamic_size:
        h, w = (int(d) for d in input_hw)
        if (min_side, max_side, opt_hw) != (None, None, None) and (min_side or h, max_side or h) != (h, h):
            raise QuasarError(f"the graph takes a fixed {h}x{w} input; H/W options do not apply")
        return ShapeProfile((batch[0], h, w, 3), (batch[1], h, w, 3), (batch[2], h, w, 3))
    spec = info.preprocess
    m = int(spec.get("size_multiple", 1))
    size = int(spec.get("size", 224))
    lo = min_side or _up(spec.get("min_size", m), m)
    hi = max_side or (size if spec.get("policy") == "native" else 2 * size)
    oh, ow = opt_hw or (_down(0.75 * min(size, hi), m), _down(min(size, hi), m))
    return ShapeProfile((batch[0], lo, lo, 3), (batch[1], oh, ow, 3), (batch[2], hi, hi, 3))


# --------------------------------------------------------------------------- build


def _write_atomic(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _input_batch(onnx_path: str) -> int | None:
    """The graph's fixed batch size (static graphs), or None when the batch is dynamic."""
    import onnx

    x = onnx.load(onnx_path, load_external_data=False).graph.input[0]
    d = x.type.tensor_type.shape.dim[0]
    return d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None


def _input_hw(onnx_path: str) -> tuple[int | str, int | str]:
    import onnx

    model = onnx.load(onnx_path, load_external_data=False)
    (x,) = [i for i in model.graph.input if i.name == INPUT_NAME]
    dims = [d.dim_param or d.dim_value for d in x.type.tensor_type.shape.dim]
    return dims[1], dims[2]


def _make_logger(trt, verbose: bool):
    """A TensorRT logger that keeps the errors, so that a failed build can say why in one line."""

    class Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity, msg) -> None:
            bad = severity in (trt.ILogger.Severity.ERROR, trt.ILogger.Severity.INTERNAL_ERROR)
            if bad:
                self.errors.append(str(msg))
            if verbose or bad:
                print(f"[TensorRT] {msg}", flush=True)

    return Logger()


def _check_build_args(onnx_path: str, engine_path, int8: bool):
    """(the model's info, the engine path) after every check that needs no TensorRT."""
    if not os.path.isfile(onnx_path):
        raise QuasarError(f"{onnx_path}: no such ONNX file")
    info = load_info(onnx_path)
    engine_path = os.fspath(engine_path) if engine_path else os.path.splitext(onnx_path)[0] + ".engine"
    parent = os.path.dirname(os.path.abspath(engine_path))
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        raise QuasarError(f"{engine_path}: output directory {parent} does not exist or is not writable")
    if int8 and info.precision != "int8":
        raise QuasarError(f"--int8 needs a QDQ graph ({onnx_path} is {info.precision}): "
                          "export with quasar export onnx --precision int8")
    if info.precision == "int8":
        import onnx

        from quasar.export.int8 import int8_scheme

        if int8_scheme(onnx.load(onnx_path, load_external_data=False)) == "cpu":
            raise QuasarError(f"{onnx_path} is quantised for ONNX Runtime CPU (uint8 activations); TensorRT "
                              "needs zero-point-free int8: quasar export onnx --precision int8 --int8-scheme tensorrt")
    return info, engine_path


def _builder_config(trt, builder, profile: ShapeProfile, *, weak: bool, fp16: bool, int8: bool, tf32: bool,
                    optimization_level: int | None, workspace_gib: float, cache_path: str | None):
    """The builder config: workspace, precision flags (weakly typed TensorRT only), the optimisation
    profile and the timing cache (read from ``cache_path`` when it exists)."""
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if not tf32 and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)
    if optimization_level is not None:
        config.builder_optimization_level = int(optimization_level)
    if weak:
        if fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        if int8:
            config.set_flag(trt.BuilderFlag.INT8)
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(INPUT_NAME, profile.min, profile.opt, profile.max)
    config.add_optimization_profile(opt_profile)
    cache_bytes = b""
    if cache_path and os.path.exists(cache_path):
        with open(cache_path, "rb") as f:
            cache_bytes = f.read()
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=True)  # a cache from another GPU is ignored, not fatal
    return config


def build_engine(onnx_path: str | os.PathLike, engine_path: str | os.PathLike | None = None, *,
                 fp16: bool = False, int8: bool = False, profile: ShapeProfile | None = None,
                 min_batch: int = 1, opt_batch: int = 8, max_batch: int = 32, min_side: int | None = None,
                 max_side: int | None = None, opt_hw: tuple[int, int] | None = None,
                 timing_cache: str | os.PathLike | None = None, workspace_gib: float = DEFAULT_WORKSPACE_GIB,
                 optimization_level: int | None = None, tf32: bool = True, verbose: bool = False) -> str:
    """Build ``engine_path`` (default: the ONNX path with ``.engine``) and its sidecar; returns the path.

    ``timing_cache`` (a file, created if missing, updated after the build) makes rebuilds of the same
    layers on the same GPU take seconds instead of minutes. ``tf32=False`` keeps fp32 layers in true
    fp32 (TensorRT uses TF32 tensor cores for them by default on Ampere and newer), for parity checks.
    """
    onnx_path = os.fspath(onnx_path)
    info, engine_path = _check_build_args(onnx_path, engine_path, int8)
    int8 = int8 or info.precision == "int8"
    profile = profile or make_profile(info, _input_hw(onnx_path), fixed_batch=_input_batch(onnx_path),
                                      min_batch=min_batch, opt_batch=opt_batch,
                                      max_batch=max_batch, min_side=min_side, max_side=max_side, opt_hw=opt_hw)

    trt = import_tensorrt()
    weak = has_precision_flags(trt) and info.precision != "fp16"
    if not weak and fp16 and info.precision == "fp32":
        raise QuasarError(f"TensorRT {trt.__version__} takes precision from the graph (no FP16 flag): "
                          "export with quasar export onnx --precision fp16 and build from that")
    logger = _make_logger(trt, verbose)
    builder = trt.Builder(logger)
    flags = 0
    if not weak and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(onnx_path):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise QuasarError(f"TensorRT cannot parse {onnx_path}: {errors}")

    cache_path = os.fspath(timing_cache) if timing_cache else None
    config = _builder_config(trt, builder, profile, weak=weak, fp16=fp16, int8=int8, tf32=tf32,
                             optimization_level=optimization_level, workspace_gib=workspace_gib,
                             cache_path=cache_path)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        why = logger.errors[-1] if logger.errors else "see the TensorRT messages above"
        raise QuasarError(f"TensorRT could not build an engine from {onnx_path}: {why}")
    data = bytes(serialized)
    _write_atomic(engine_path, data)
    if cache_path:
        _write_atomic(cache_path, bytes(config.get_timing_cache().serialize()))

    sidecar = engine_sidecar(
        engine_bytes=data, onnx_path=onnx_path, onnx_metadata=read_onnx_metadata(onnx_path),
        platform=current_platform(trt.__version__), profile=profile.to_dict(),
        precision={"graph": info.precision, "fp16": bool(fp16 and weak), "int8": bool(int8), "tf32": bool(tf32),
                   "strongly_typed": not weak},
        built=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    _write_atomic(engine_sidecar_path(engine_path), (json.dumps(sidecar, indent=1, sort_keys=True) + "\n").encode())
    return engine_path
