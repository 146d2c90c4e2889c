"""int8 variant: ONNX Runtime static QDQ quantisation, calibrated on real photos.

Why static QDQ with per-channel weights: QDQ keeps the graph a plain ONNX graph that ONNX Runtime
fuses into integer kernels (``QLinearConv`` on VNNI CPUs) and that TensorRT reads as explicit
quantisation; per-channel weight scales matter for depthwise convolutions, whose channels differ in
range by orders of magnitude.

Two schemes, because the two consumers want incompatible things:

* ``cpu`` (default): uint8 activations with zero points, int8 symmetric weights (U8S8). ONNX Runtime
  then drops the ReLU6 Clips into the quantisation range and fuses every quantised conv into a
  ``QLinearConv``; with symmetric activations the Clips stay, most convs are left as
  ``DequantizeLinear -> Conv`` in float, and the "int8" graph ran slower than fp32.
* ``tensorrt``: int8 symmetric activations and weights (zero point 0), the only form TensorRT's
  explicit quantisation accepts.

What stays float32 (``nodes_to_exclude``):

* everything outside ``/encoder/backbone/`` (``/encoder/backbone/backbone/`` for ``+taps``
  encoders, whose channel statistics stay float32): the input Cast/Transpose and mean/std normalisation (the
  uint8 image is exact; requantising the normalised image only adds error) and the scoring head (L2
  normalisation, centroid Gemm, sigmoid: margins of 1e-3 scaled by logit scales of ~100 do not
  survive 8 bits);
* shape arithmetic (see :func:`image_path_nodes`), LayerNormalization and Softmax;
* the leading ``FP32_LEADING_FRACTION`` of the backbone's weighted layers. Measured on effnet-lite0
  (20 held-out photos x 5 versions, SRCC of int8 against fp32 scores for two heads): quantising
  everything gives 0.75/0.69 (symmetric) and 0.91/0.88 (U8S8); quantising only the stem conv, or
  only block 0, already gives < 0.8, while blocks 3..6 alone each stay > 0.998. The high-resolution
  first layers see per-tensor activation ranges dominated by a few channels (even int8 weights
  alone, per channel, give 0.978, most of it from the depthwise kernels). Keeping the first 30% of
  the weighted layers (stem and blocks 0..2) in fp32 gives 0.997/0.994 with either scheme, 0.998 for
  the default pack; the U8S8 graph then runs batch 8 at 384x512 in 257 ms against 336 ms for fp32
  (2-core AVX-512 VNNI). The fp32 layers take ~40% of its time: the price of the ranking.

Calibration uses photos preprocessed exactly like the runtime does (:mod:`quasar.preprocess`): the
anchor photos and distorted copies of them, so the ranges cover the degraded images that scoring
must rank.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import numpy as np
import onnx

from quasar.contract import INPUT_NAME
from quasar.errors import QuasarError
from quasar.io import IMAGE_EXTENSIONS, read_rgb
from quasar.paths import photos_dir
from quasar.preprocess import PreprocessSpec, preprocess

QUANTISED_SCOPE = "/encoder/backbone/"
# A multi-layer (``+taps``) encoder wraps the backbone: only the wrapped network is quantised; the
# channel statistics (means, E[x^2] - mean^2, square roots) stay float32, where 8 bits would cancel.
TAPPED_SCOPE = "/encoder/backbone/backbone/"
FP32_OP_TYPES = ("LayerNormalization", "Softmax")
WEIGHTED_OP_TYPES = ("Conv", "ConvTranspose", "MatMul", "Gemm")
FP32_LEADING_FRACTION = 0.3
SCHEMES = ("cpu", "tensorrt")
DEFAULT_CALIBRATION_PHOTOS = 24


def default_calibration_images(n_photos: int = DEFAULT_CALIBRATION_PHOTOS) -> list[np.ndarray]:
    """The first ``n_photos`` anchor photos already in the photo cache, each also once distorted
    (types and levels in rotation). Never downloads: without cached photos it is a one-line error
    asking for calibration images (``--calib-dir``)."""
    from quasar.centroids.distortions import ANCHOR_TYPES, distort
    from quasar.photos import cached_photos

    photos = [p for p in cached_photos() if p.split == "anchor"][:n_photos]
    if not photos:
        raise QuasarError(f"int8 calibration needs images: pass --calib-dir DIR (a folder of photos like the ones "
                          f"you will score); no anchor photos are cached in {photos_dir()}")
    out = []
    for i, p in enumerate(photos):
        img = read_rgb(p.path)
        out.append(img)
        out.append(distort(img, ANCHOR_TYPES[i % len(ANCHOR_TYPES)], 2 + i % 3))
    return out


def images_in_dir(path: str | os.PathLike) -> list[str]:
    """Image files directly in ``path`` (sorted), for ``--calib-dir``."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise QuasarError(f"{path}: calibration directory does not exist")
    files = sorted(os.path.join(path, f) for f in os.listdir(path) if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS)
    if not files:
        raise QuasarError(f"{path}: no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) to calibrate with")
    return files


class PhotoCalibrationReader:
    """``CalibrationDataReader`` over images, one per batch at its own preprocessed size.

    One image per batch because native-resolution specs give every photo its own shape (``batch``
    images per batch for a static graph with a fixed batch); min/max calibration does not care
    about the batch size. Images are decoded and resized lazily.
    """

    def __init__(self, images: Sequence[str | np.ndarray], spec: PreprocessSpec, input_name: str = INPUT_NAME,
                 batch: int = 1):
        if not images:
            raise QuasarError("int8 calibration needs at least one image")
        self.images, self.spec, self.input_name, self.batch = list(images), spec, input_name, batch
        self._it: Iterator[dict[str, np.ndarray]] | None = None

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        group: list[np.ndarray] = []
        for item in self.images:
            try:
                img = read_rgb(item) if isinstance(item, str) else item
            except ValueError as e:
                raise QuasarError(f"calibration image: {e}") from None
            group.append(preprocess(img, self.spec))
            if len(group) == self.batch:
                yield {self.input_name: np.stack(group)}
                group = []
        if group:  # a static graph's fixed batch N: the last group padded with its last image (same ranges)
            group += [group[-1]] * (self.batch - len(group))
            yield {self.input_name: np.stack(group)}

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._it is None:
            self._it = self._batches()
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = None

    def __len__(self) -> int:  # batches
        return -(-len(self.images) // self.batch)


SHAPE_OPS = ("Shape", "Size")


def image_path_nodes(model: onnx.ModelProto, input_name: str = INPUT_NAME) -> set[str]:
    """Nodes that compute on pixel data, i.e. are reached from the input other than through a Shape.

    The rest is shape arithmetic, e.g. timm's TF-"same" padding computes its pads in float from the
    input size (``ceil(ih / s)``, with Sub/Mul/Add). Those are quantisable op types, and quantising
    them would change the pads and shift the feature maps, so they are excluded by construction
    rather than by luck (ORT 1.32 happened to leave them alone on effnet-lite0).
    """
    data = {input_name}
    out = set()
    for n in model.graph.node:  # ONNX node lists are topologically sorted
        if n.op_type in SHAPE_OPS or not any(i in data for i in n.input):
            continue
        out.add(n.name)
        data.update(n.output)
    return out


def nodes_to_exclude(model: onnx.ModelProto, leading_fraction: float = FP32_LEADING_FRACTION) -> list[str]:
    """Names of the nodes to keep in float32 (see the module docstring)."""
    image_nodes = image_path_nodes(model)
    scope = TAPPED_SCOPE if any(n.name.startswith(TAPPED_SCOPE) for n in model.graph.node) else QUANTISED_SCOPE
    scoped = [n for n in model.graph.node if n.name.startswith(scope) and n.name in image_nodes]
    if not scoped:
        raise RuntimeError(f"no node is named {QUANTISED_SCOPE}...: was the graph made by quasar.export?")
    weighted = [k for k, n in enumerate(scoped) if n.op_type in WEIGHTED_OP_TYPES]
    n_keep = int(np.ceil(leading_fraction * len(weighted)))
    first_quantised = weighted[n_keep] if n_keep < len(weighted) else len(scoped)
    quantised = {n.name for n in scoped[first_quantised:] if n.op_type not in FP32_OP_TYPES}
    return [n.name for n in model.graph.node if n.name not in quantised]


def int8_scheme(model: onnx.ModelProto) -> str | None:
    """``cpu`` (uint8 activations), ``tensorrt`` (int8 only, zero points 0) or None (not quantised)."""
    inits = {t.name: t for t in model.graph.initializer}
    q = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    if not q:
        return None
    for n in q:
        zp = inits.get(n.input[2]) if len(n.input) > 2 else None
        if zp is None:
            continue
        if zp.data_type == onnx.TensorProto.UINT8 or np.any(onnx.numpy_helper.to_array(zp) != 0):
            return "cpu"
    return "tensorrt"


def quantize_int8(fp32_path: str, out_path: str, images: Sequence[str | np.ndarray], spec: PreprocessSpec,
                  scheme: str = "cpu", per_channel: bool = True, batch: int = 1,
                  leading_fraction: float = FP32_LEADING_FRACTION) -> None:
    """Quantise ``fp32_path`` (a fused graph) to a QDQ int8 graph at ``out_path`` (see :data:`SCHEMES`);
    ``leading_fraction`` of the backbone's weighted layers stay float32 (:func:`nodes_to_exclude`)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if scheme not in SCHEMES:
        raise QuasarError(f"int8 scheme must be one of {SCHEMES}, not {scheme!r}")

    class _Reader(PhotoCalibrationReader, CalibrationDataReader):
        pass

    cpu = scheme == "cpu"
    quantize_static(
        fp32_path, out_path, _Reader(images, spec, batch=batch),
        quant_format=QuantFormat.QDQ,
        per_channel=per_channel,
        activation_type=QuantType.QUInt8 if cpu else QuantType.QInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=nodes_to_exclude(onnx.load(fp32_path), leading_fraction),
        calibrate_method=CalibrationMethod.MinMax,
        # No "CalibMaxIntermediateOutputs": onnxruntime's MinMax calibrater *drops* each full chunk
        # (only the last len % max images set the ranges; none when it divides evenly). The collected
        # outputs are per-tensor min/max scalars, so keeping all of them costs no memory.
        extra_options={"ActivationSymmetric": not cpu, "WeightSymmetric": True},
    )
