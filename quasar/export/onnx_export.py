"""Export one (encoder, pack) as one fused ONNX graph, in fp32, fp16 or int8 (see the fused model contract).

Exporter choice, measured here with torch 2.14 on 2 CPU cores: the TorchScript exporter
(``dynamo=False``) exports effnet-lite0 with dynamic batch/H/W in 1-5 s with scoped node names
(``/encoder/backbone/...``) that the int8 step uses to keep the normalisation and the head in fp32;
the dynamo exporter took 499 s for the same graph (symbolic shapes of TF-"same" padding) and names
nodes ``node_Conv_12``. Both graphs compute the same function.

Precisions share the I/O (uint8 NHWC in, float32 out):

* ``fp32``: the traced graph.
* ``fp16``: the *encoder* is traced in half precision (its input Cast goes straight to fp16); the
  scoring head stays float32 (see :mod:`quasar.export.fused`). ONNX Runtime's CPU provider runs such a
  graph by inserting Casts around ops it lacks fp16 kernels for: correct but not fast; the variant is
  meant for GPUs (CUDA provider, TensorRT 11, which takes precision from the graph).
* ``int8``: static QDQ quantisation of the fp32 graph (:mod:`quasar.export.int8`).

Every file is written to a temporary name beside ``out_path`` and renamed into place, so readers never
see half a model and a failed export leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import onnx
import torch

from quasar.centroids.pack import CentroidPack, PackError
from quasar.contract import HEAD_SHA256_KEY, INPUT_NAME, OUTPUT_NAMES, PRECISIONS, fused_metadata
from quasar.errors import QuasarError
from quasar.export.fused import FusedScorer, build_fused
from quasar.export.graph import cast_before_transpose, name_head_initializers, set_output_shapes
from quasar.export.metadata import producer_version, seal_model, write_metadata
from quasar.integrity import head_sha256_of_protos
from quasar.preprocess import PreprocessSpec

MIN_OPSET = 17  # LayerNormalization is a single op from 17 on (and TensorRT keeps it in fp32)
# Static graphs: how an image becomes H x W unless --fit says otherwise. Measured (benchmarks/static_fit.py,
# 560 held-out images at 384x512): SRCC against the dynamic default model 0.9933 stretch vs 0.9892 crop.
DEFAULT_FIT = "stretch"


def refresh_head_sha256(path: str) -> None:
    """Recompute ``quasar.head_sha256`` after a graph rewrite (the head initializers must still be there)."""
    model = onnx.load(path)
    write_metadata(model, {HEAD_SHA256_KEY: head_sha256_of_protos(model.graph.initializer)})
    onnx.save(model, path)


def load_pack(pack: CentroidPack | str | os.PathLike, allow_unhashed: bool = False) -> CentroidPack:
    """A pack object, a pack file or ``"default"``, validated (:func:`quasar.centroids.validate.validate_pack`);
    problems become :class:`QuasarError`, before any encoder is built."""
    from quasar.centroids.validate import validate_pack

    try:
        if isinstance(pack, CentroidPack):
            validate_pack(pack, "<pack object>")
            return pack
        return CentroidPack.load(pack, allow_unhashed=allow_unhashed)
    except PackError as e:
        raise QuasarError(str(e)) from None


def check_output_path(out_path: str | os.PathLike) -> str:
    """Fail before minutes of work if the output cannot be written."""
    out = os.path.abspath(os.fspath(out_path))
    parent = os.path.dirname(out)
    if os.path.isdir(out):
        raise QuasarError(f"{out}: is a directory; give a file name for the model")
    if not os.path.isdir(parent):
        raise QuasarError(f"{out}: the output directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise QuasarError(f"{out}: the output directory {parent} is not writable")
    return out


def export_spec(spec: PreprocessSpec, size: int | None) -> PreprocessSpec:
    """The pack's spec with ``size`` (crop size, or long-side cap for native resolution) replaced."""
    if size is None or size == spec.size:
        return spec
    if size < 1 or (not spec.fixed_size and size < spec.min_size):
        raise QuasarError(f"size {size} is below the encoder's smallest input ({spec.min_size} px)")
    return dataclasses.replace(spec, size=int(size))


def dummy_input(fused: FusedScorer, batch: int = 2) -> torch.Tensor:
    """A small uint8 batch for tracing; H != W so that no height/width mix-up can hide.

    For dynamic-size encoders the size is irrelevant to the graph (shapes are traced as ops), so it
    is kept small: tracing runs the model, and fp16 convolutions are slow on the CPU.
    """
    spec = fused.spec
    if fused.encoder.dynamic_size and not spec.fixed_size:
        m = spec.size_multiple
        h = m * max(1, -(-max(96, spec.min_size) // m))
        w = h + m * max(1, -(-32 // m))
    else:
        h = w = spec.size
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (batch, h, w, 3), dtype=torch.uint8, generator=g)


def _check_runs(fused: FusedScorer, x: torch.Tensor, size_changed: bool) -> None:
    """Run once before tracing, so a wrong ``--size`` fails with one clear line rather than a trace dump."""
    try:
        with torch.no_grad():
            fused(x[:1])
    except (RuntimeError, ValueError, AssertionError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        hint = " (it takes a fixed input size: leave out --size)" if size_changed else ""
        raise QuasarError(f"{fused.encoder.encoder_id} does not run at {x.shape[1]}x{x.shape[2]} px{hint}: "
                          f"{msg}") from None


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """No MHA fast path (it would trace to ``_native_multi_head_attention``) and no exporter chatter."""
    mha = torch.backends.mha
    before = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=".*TorchScript-based ONNX export.*")
            warnings.filterwarnings("ignore", message=".*feature will be removed.*")
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=FutureWarning)
            yield
    finally:
        mha.set_fastpath_enabled(before)


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """onnxruntime.quantization logs advice on the root logger (e.g. to run its pre-processing, which
    we measured and do not need); keep the CLI output to our own lines."""
    root = logging.getLogger()
    before = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(before)


def trace_to_onnx(fused: FusedScorer, path: str, opset: int = MIN_OPSET, batch: int = 2,
                  static_input: torch.Tensor | None = None) -> None:
    """Trace ``fused`` to ``path`` (TorchScript exporter), with dynamic batch and, if possible, H and W;
    or, given ``static_input``, with every dimension fixed to its shape."""
    x = dummy_input(fused, batch) if static_input is None else static_input
    dynamic = fused.encoder.dynamic_size and not fused.spec.fixed_size
    axes = {INPUT_NAME: {0: "batch", 1: "height", 2: "width"} if dynamic else {0: "batch"}}
    axes.update({name: {0: "batch"} for name in OUTPUT_NAMES})
    if static_input is not None:
        axes = None
    with _quiet_export(), torch.no_grad():
        torch.onnx.export(fused, (x,), path, input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                          dynamic_axes=axes, opset_version=opset, do_constant_folding=True, dynamo=False)


def finalize(path: str, fused: FusedScorer, pack: CentroidPack, precision: str, rewrite: bool = True,
             static_spec: PreprocessSpec | None = None, batch: int | None = None) -> None:
    """Apply the graph rewrites, write the contract metadata and check the file.

    ``static_spec``/``batch``: a static graph's policy-``fixed`` spec and fixed batch (metadata and output shapes).
    """
    model = onnx.load(path)
    if rewrite:
        cast_before_transpose(model)
        h = fused.head
        name_head_initializers(model, h.head_weights.numpy(), h.logit_scales.numpy(),
                               h.head_biases.numpy() if h.has_bias else None,
                               h.combine_biases.numpy() if h.has_combine_bias else None)
        set_output_shapes(model, fused.num_heads, batch=batch)
    spec = static_spec or fused.spec
    dynamic = static_spec is None and bool(fused.encoder.dynamic_size and not fused.spec.fixed_size)
    model.producer_name = "quasar-engine"
    model.producer_version = producer_version()
    model.doc_string = (f"QUASAR fused scorer: {fused.encoder.encoder_id} + pack {pack.content_hash} "
                        f"({len(pack.heads)} heads), {precision}")
    write_metadata(model, fused_metadata(
        encoder=fused.encoder.encoder_id, pack_hash=pack.content_hash, heads=pack.output_names,
        combine=pack.combine_plan(), explain=pack.explain_plan(),
        logit_scales=pack.logit_scales().tolist(), preprocess=spec.to_dict(),
        dynamic_size=dynamic, precision=precision))
    write_metadata(model, {HEAD_SHA256_KEY: head_sha256_of_protos(model.graph.initializer)})  # quasar.head_sha256: checked by the runtime at load
    onnx.save(model, path)
    onnx.checker.check_model(path)


def static_spec_for(spec: PreprocessSpec, height: int, width: int, fit: str) -> PreprocessSpec:
    """The policy-``fixed`` spec of a static graph (size = max(H, W)); QuasarError for sizes the encoder cannot take."""
    from quasar.export.static import FITS

    if fit not in FITS:
        raise QuasarError(f"--fit must be one of {', '.join(FITS)}, not {fit!r}")
    m = spec.size_multiple
    if height % m or width % m:
        raise QuasarError(f"--static {height}x{width}: both sides must be multiples of {m} for this encoder "
                          f"(e.g. {max(m, height // m * m)}x{max(m, width // m * m)})")
    if min(height, width) < spec.min_size:
        raise QuasarError(f"--static {height}x{width}: below the encoder's smallest input ({spec.min_size} px)")
    return dataclasses.replace(spec, policy="fixed", height=int(height), width=int(width), fit=fit,
                               size=int(max(height, width)))


def export_onnx(encoder_id: str | None, pack: CentroidPack | str | os.PathLike, out_path: str | os.PathLike,
                precision: str = "fp32", size: int | None = None, opset: int = MIN_OPSET,
                calibration_images: Sequence[str | np.ndarray] | None = None, int8_scheme: str = "cpu",
                static: tuple[int, int] | None = None, batch: int = 1, fit: str = DEFAULT_FIT,
                clip_form: str = "clip", embedding: bool = False) -> str:
    """Export the fused graph of ``encoder_id`` (default: the pack's encoder) and ``pack``; returns the path.

    The graph computes QUASAR scores (Ilyin et al., 2025, "QUASAR: Quality and Aesthetics Scoring with Advanced Representations") in one pass: encoder, L2 normalisation, the heads'
    margins (cosine to the good centroid minus cosine to the bad one, for the paper's heads) and
    the sigmoid, following the contract of :mod:`quasar.contract`.

    Args:
        encoder_id: the encoder (:func:`quasar.encoders.create_encoder`); None: the pack's.
        out_path: where to write the ``.onnx`` file (written in a temporary file, then renamed).
        pack: a :class:`CentroidPack`, a pack file, or ``"default"``.
        precision: ``fp32``, ``fp16`` or ``int8``.
        size: override the spec's size (crop size, or the long-side cap of native-resolution encoders).
        opset: ONNX opset, 17 or newer.
        calibration_images: int8 only: image paths or RGB uint8 arrays; default the anchor photos and
            distorted copies of them (:func:`quasar.export.int8.default_calibration_images`).
        int8_scheme: ``cpu`` (uint8 activations: fastest on ONNX Runtime CPU) or ``tensorrt``
            (symmetric int8, what TensorRT accepts); see :mod:`quasar.export.int8`.
        static: (H, W): a static graph with input [batch, H, W, 3], shapes folded and mobile-friendly
            ops (:mod:`quasar.export.static`); its spec is policy ``fixed`` with ``fit``.
        batch, fit, clip_form: static graphs only (see :mod:`quasar.export.static`).
        embedding: also output the unit embedding the heads read (``embedding`` [N, D]; see
            :mod:`quasar.export.embedding`).

    Returns:
        ``out_path`` as a string: uint8 NHWC ``images`` in, float32 ``scores`` and ``margins`` [N, K]
        out, with the metadata the runtime reads (:class:`quasar.runtime.Scorer` loads it as is).

    Raises:
        QuasarError: unknown precision, a pack for another encoder, an unwritable output, a bad size.

    Examples:
        The default model (a few minutes on a CPU; the file shipped in ``quasar/data`` is this export:
        ``tests/test_shipped_model.py`` checks that a fresh export scores 9 images within 1e-6 of it):

        >>> path = export_onnx(None, "default", "quality-fp32.onnx")  # doctest: +SKIP
        >>> from quasar.runtime import Scorer
        >>> Scorer(path).info.summary_heads  # doctest: +SKIP
        ('quality',)
    """
    _check_export_args(precision, int8_scheme, opset, static, size, batch)
    out = check_output_path(out_path)
    pack = load_pack(pack)
    spec = export_spec(pack.preprocess, size)
    fixed = static_spec_for(spec, *static, fit) if static is not None else None
    fused = build_fused(encoder_id or pack.encoder, pack, spec)
    if fixed is not None:
        g = torch.Generator().manual_seed(0)
        x = torch.randint(0, 256, (batch, *fixed.output_hw, 3), dtype=torch.uint8, generator=g)
        _check_runs(fused, x, False)
    else:
        x = None
        _check_runs(fused, dummy_input(fused, 1), spec != pack.preprocess)
    static_kw = {"static_spec": fixed, "batch": batch} if fixed is not None else {}
    with tempfile.TemporaryDirectory(dir=os.path.dirname(out), prefix=".quasar-export-") as tmp:
        graph_path = _write_graph(tmp, fused, pack, precision, opset, x, fixed, static_kw, clip_form)
        if precision == "int8":
            graph_path = _quantize(tmp, graph_path, fused, pack, fixed, static_kw, calibration_images, int8_scheme)
        if embedding:
            from quasar.export.embedding import add_embedding_output

            add_embedding_output(graph_path)
        seal_model(graph_path)
        os.replace(graph_path, out)
    return out


def _check_export_args(precision: str, int8_scheme: str, opset: int, static, size, batch: int) -> None:
    """The arguments of :func:`export_onnx` that can be refused before anything is built."""
    if precision not in PRECISIONS:
        raise QuasarError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if int8_scheme not in ("cpu", "tensorrt"):
        raise QuasarError(f"int8 scheme must be cpu or tensorrt, not {int8_scheme!r}")
    if opset < MIN_OPSET:
        raise QuasarError(f"opset {opset} is too old; QUASAR graphs need opset {MIN_OPSET} or newer")
    if static is not None and size is not None:
        raise QuasarError("--size does not apply to --static graphs (their size is H x W)")
    if static is not None and batch < 1:
        raise QuasarError(f"--batch must be at least 1, not {batch}")


def _write_graph(tmp: str, fused, pack: CentroidPack, precision: str, opset: int, x, fixed, static_kw: dict,
                 clip_form: str) -> str:
    """Trace ``fused`` to ``tmp``/model.onnx with the contract's metadata (int8: the fp32 graph it is
    quantised from), folded and rewritten when static; returns the path."""
    graph_path = os.path.join(tmp, "model.onnx")
    if precision == "fp16":
        # Only the encoder: the head (normalisation of e, centroids, scales) stays float32.
        # In place: the module is ours, and a deep copy would duplicate a CLIP text tower.
        fused.encoder.half()
    trace_to_onnx(fused, graph_path, opset, static_input=x)
    finalize(graph_path, fused, pack, "fp32" if precision == "int8" else precision, **static_kw)
    if fixed is not None:
        from quasar.export.static import fold_and_rewrite

        # int8: Clip stays Clip, which the quantiser folds into the uint8 range (OpenCV 4.6 reads
        # no QDQ graph anyway); fp32/fp16: clip_form.
        fold_and_rewrite(graph_path, clip_form="clip" if precision == "int8" else clip_form)
        refresh_head_sha256(graph_path)
    return graph_path


def _quantize(tmp: str, graph_path: str, fused, pack: CentroidPack, fixed, static_kw: dict,
              calibration_images, int8_scheme: str) -> str:
    """The int8 graph of the fp32 ``graph_path``, with the contract's metadata; returns its path."""
    from quasar.export.int8 import default_calibration_images, quantize_int8

    images = calibration_images if calibration_images is not None else default_calibration_images()
    q_path = os.path.join(tmp, "model.int8.onnx")
    with _quiet_quantizer():
        quantize_int8(graph_path, q_path, images, fixed or fused.spec, scheme=int8_scheme,
                      batch=static_kw.get("batch", 1))
    finalize(q_path, fused, pack, "int8", rewrite=False, **static_kw)
    return q_path
