"""ONNX Runtime's mobile usability checker, as data: per execution provider, how much of a graph it takes.

``python -m onnxruntime.tools.check_onnx_model_mobile_usability MODEL`` prints its analysis; this
calls the same functions (``onnxruntime.tools.mobile_helpers.usability_checker``) the same way
(the model optimised to ORT's basic level first, as ORT-format conversion does; nodes whose inputs
have dynamic shapes count as unsupported) and returns the numbers, so that tests and benchmarks can
compare them. ``python -m quasar.export.mobile MODEL...`` prints one line per model and EP.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

EPS = ("NNAPI", "CoreML NeuralNetwork", "CoreML MLProgram")


@dataclass(frozen=True)
class EpVerdict:
    ep: str
    verdict: str  # YES / MAYBE / NO, the checker's suitability
    supported: int  # nodes the EP takes
    nodes: int
    partitions: int
    unsupported_ops: tuple[str, ...]
    dynamic_nodes: int  # nodes refused only because an input's shape is dynamic

    def line(self) -> str:
        extra = f"; unsupported ops: {', '.join(self.unsupported_ops)}" if self.unsupported_ops else ""
        dyn = f"; {self.dynamic_nodes} nodes with dynamic input shapes" if self.dynamic_nodes else ""
        return (f"{self.ep}: {self.verdict} ({self.supported}/{self.nodes} nodes, "
                f"{self.partitions} partition{'s' if self.partitions != 1 else ''}{extra}{dyn})")


def mobile_usability(path: str | os.PathLike) -> dict[str, EpVerdict]:
    """The checker's partitioning of ``path`` for NNAPI and both CoreML formats."""
    from onnxruntime.tools.mobile_helpers import usability_checker as uc
    from onnxruntime.tools.onnx_model_utils import ModelProtoWithShapeInfo, optimize_model

    quiet = logging.getLogger("onnxruntime")
    checks = {
        "NNAPI": lambda m: uc.check_nnapi_partitions(m, True),
        "CoreML NeuralNetwork": lambda m: uc.check_coreml_partitions(m, True, "coreml_supported_neuralnetwork_ops.md"),
        "CoreML MLProgram": lambda m: uc.check_coreml_partitions(m, True, "coreml_supported_mlprogram_ops.md"),
    }
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        opt = Path(tmp) / Path(path).name
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            optimize_model(Path(path), opt, use_external_initializers=True)
            model = ModelProtoWithShapeInfo(opt).model_with_shape_info
        finally:
            quiet.setLevel(level)
        for ep, check in checks.items():
            info = check(model)
            out[ep] = EpVerdict(ep=ep, verdict=info.suitability().name, supported=info.num_supported_nodes,
                                nodes=info.num_nodes, partitions=info.num_partitions,
                                unsupported_ops=tuple(sorted(info.unsupported_ops)),
                                dynamic_nodes=info.nodes_unsupported_due_to_dynamic_input)
    return out


def main(argv: list[str] | None = None) -> int:
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print("usage: python -m quasar.export.mobile MODEL.onnx...", file=sys.stderr)
        return 2
    for p in paths:
        for v in mobile_usability(p).values():
            print(f"{p}: {v.line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
