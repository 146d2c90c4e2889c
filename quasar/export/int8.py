"""int8 variant: ONNX Runtime static QDQ quantisation, calibrated on real photos.

Why static QDQ with per-channel weights: QDQ keeps the graph a plain ONNX graph that ONNX Runtime
(CPU, VNNI) fuses into integer kernels and that TensorRT reads as explicit quantisation; per-channel
weight scales matter for depthwise convolutions, whose channels differ in range by orders of
magnitude.

What stays float32 (``nodes_to_exclude``): everything outside ``/encoder/backbone/``, i.e. the input
Cast/Transpose and mean/std normalisation (their input is the uint8 image, already exact, and
quantising the normalised image again would only add error) and the scoring head (L2 normalisation,
centroid Gemm, sigmoid: margins of 1e-3 scaled by logit scales of ~100 do not survive 8 bits); plus
LayerNormalization and Softmax anywhere, whose outputs are sensitive to the input range.

Calibration uses photos preprocessed exactly like the runtime does (:mod:`quasar.preprocess`): the
anchor photos and distorted copies of them, so the ranges cover the degraded images that scoring
must rank.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import numpy as np
import onnx

from quasar.errors import QuasarError
from quasar.export.metadata import INPUT_NAME
from quasar.preprocess import PreprocessSpec, preprocess, read_rgb

QUANTISED_SCOPE = "/encoder/backbone/"
FP32_OP_TYPES = ("LayerNormalization", "Softmax")
DEFAULT_CALIBRATION_PHOTOS = 24
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def default_calibration_images(n_photos: int = DEFAULT_CALIBRATION_PHOTOS) -> list[np.ndarray]:
    """The first ``n_photos`` anchor photos, each also once distorted (types and levels in rotation)."""
    from quasar.centroids.distortions import ANCHOR_TYPES, distort
    from quasar.photos import fetch_photos

    photos = [p for p in fetch_photos() if p.split == "anchor"][:n_photos]
    if not photos:
        raise QuasarError("no anchor photos found for int8 calibration; pass calibration images")
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
    files = sorted(os.path.join(path, f) for f in os.listdir(path) if f.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
        raise QuasarError(f"{path}: no images ({', '.join(IMAGE_EXTENSIONS)}) to calibrate with")
    return files


class PhotoCalibrationReader:
    """``CalibrationDataReader`` over images, one per batch at its own preprocessed size.

    One image per batch because native-resolution specs give every photo its own shape; min/max
    calibration does not care about the batch size. Images are decoded and resized lazily.
    """

    def __init__(self, images: Sequence[str | np.ndarray], spec: PreprocessSpec, input_name: str = INPUT_NAME):
        if not images:
            raise QuasarError("int8 calibration needs at least one image")
        self.images, self.spec, self.input_name = list(images), spec, input_name
        self._it: Iterator[dict[str, np.ndarray]] | None = None

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        for item in self.images:
            try:
                img = read_rgb(item) if isinstance(item, str) else item
            except ValueError as e:
                raise QuasarError(f"calibration image: {e}") from None
            yield {self.input_name: preprocess(img, self.spec)[None]}

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._it is None:
            self._it = self._batches()
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = None

    def __len__(self) -> int:
        return len(self.images)


SHAPE_OPS = ("Shape", "Size")


def image_path_nodes(model: onnx.ModelProto, input_name: str = INPUT_NAME) -> set[str]:
    """Nodes that compute on pixel data, i.e. are reached from the input other than through a Shape.

    The rest is shape arithmetic, e.g. timm's TF-"same" padding computes its pads in float from the
    input size (``ceil(ih / s)``). Quantising that would change the pads, shift the feature maps and
    wreck accuracy (measured on effnet-lite0: SRCC 0.74 against fp32), so it must stay out.
    """
    data = {input_name}
    out = set()
    for n in model.graph.node:  # ONNX node lists are topologically sorted
        if n.op_type in SHAPE_OPS or not any(i in data for i in n.input):
            continue
        out.add(n.name)
        data.update(n.output)
    return out


def nodes_to_exclude(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes to keep in float32 (see the module docstring)."""
    image_nodes = image_path_nodes(model)
    out = []
    for n in model.graph.node:
        if not n.name.startswith(QUANTISED_SCOPE) or n.op_type in FP32_OP_TYPES or n.name not in image_nodes:
            out.append(n.name)
    if len(out) == len(model.graph.node):
        raise RuntimeError(f"no node is named {QUANTISED_SCOPE}...: was the graph made by quasar.export?")
    return out


def quantize_int8(fp32_path: str, out_path: str, images: Sequence[str | np.ndarray], spec: PreprocessSpec,
                  tmp_dir: str | None = None, per_channel: bool = True) -> None:
    """Quantise ``fp32_path`` (a fused graph) to a QDQ int8 graph at ``out_path``.

    Activations are symmetric int8 (zero point 0) and weights per-channel symmetric int8: the form
    TensorRT requires for explicit quantisation, and ONNX Runtime's CPU kernels run it as well.
    """
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static

    class _Reader(PhotoCalibrationReader, CalibrationDataReader):
        pass

    reader = _Reader(images, spec)
    model = onnx.load(fp32_path)
    quantize_static(
        fp32_path, out_path, reader,
        quant_format=QuantFormat.QDQ,
        per_channel=per_channel,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=nodes_to_exclude(model),
        calibrate_method=CalibrationMethod.MinMax,
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "CalibMaxIntermediateOutputs": 8},
    )
