"""Options of the torch backend, as torch-free data: precision, memory format, compilation, device decoding.

``Scorer(..., backend="torch", torch_options=TorchOptions(precision="fp16"))`` and ``quasar score
--backend torch --precision fp16 ...`` build one. Checked here, before torch is imported, so a bad
option is one line naming it. ``None`` fields mean "what suits the device": channels-last, device-side
decoding and pinned staging on CUDA, none of them on the CPU. ``compile`` and ``cuda_graphs`` are
CUDA-only (refused on the CPU with one line).

**Not yet run on CUDA**: no GPU was available where this was written; the CPU runs of the same code
(``--device cpu``) are tested, ``python -m benchmarks.gpu_check`` is the command that proves the CUDA side.
"""

from __future__ import annotations

from dataclasses import dataclass

from quasar.errors import QuasarError

PRECISIONS = ("fp32", "fp16", "bf16")
DEVICE_DECODE = ("auto", "on", "off")


@dataclass(frozen=True)
class TorchOptions:
    """How the torch backend runs the fused module.

    Attributes:
        precision: the encoder's dtype (``fp32``, ``fp16``, ``bf16``); the scoring heads stay float32.
            Reduced precision does not keep the default model's ranking exactly: its multi-layer
            embedding holds per-channel means of unactivated stage outputs, which rounding moves by about
            what separates similar photos. The statistics are already taken in fp32; the loss comes from
            rounding the weights and the activations alike, at every stage (bf16's 8 bits: rounding the input
            pixels alone, or any one stage, costs about as much as all; fp32 input, stem and first blocks
            do not recover it), so fp16 ranks much closer than bf16
            (``benchmarks/results/torch_precision.md``, CPU; ``gpu_check`` per head on CUDA); fp32 is the default.
        channels_last: NHWC memory format for the convolutions (None: on CUDA).
        compile: ``torch.compile`` the module (CUDA only).
        cuda_graphs: replay one CUDA graph per batch shape (CUDA only; shapes repeat per bucket).
        device_decode: ``on``: JPEGs are decoded by ``torchvision.io.decode_jpeg`` on the backend's
            device (batched; nvJPEG on CUDA), other formats on CPU threads, and resizing runs on the
            device; ``off``: the CPU pipeline (OpenCV + Pillow, as the ONNX Runtime path);
            ``auto``: ``on`` for CUDA, ``off`` for the CPU.
        pinned: stage host-decoded images in page-locked memory (None: when CUDA is available).
    """

    precision: str = "fp32"
    channels_last: bool | None = None
    compile: bool = False
    cuda_graphs: bool = False
    device_decode: str = "auto"
    pinned: bool | None = None

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise QuasarError(f"torch precision must be one of {PRECISIONS}, not {self.precision!r}")
        if self.device_decode not in DEVICE_DECODE:
            raise QuasarError(f"device_decode must be one of {DEVICE_DECODE}, not {self.device_decode!r}")
        for name in ("compile", "cuda_graphs"):
            if not isinstance(getattr(self, name), bool):
                raise QuasarError(f"TorchOptions.{name} must be True or False, not {getattr(self, name)!r}")
        if self.compile and self.cuda_graphs:
            raise QuasarError("choose torch.compile or CUDA graphs, not both")

    def check_device(self, device: str) -> None:
        """One line for an option the device cannot take (compile and CUDA graphs on the CPU)."""
        if device != "cuda":
            for name, flag in (("compile", "--compile"), ("cuda_graphs", "--cuda-graphs")):
                if getattr(self, name):
                    raise QuasarError(f"{flag} runs on CUDA only, not on {device}")

    def decodes_on_device(self, device: str) -> bool:
        return self.device_decode == "on" or (self.device_decode == "auto" and device == "cuda")
