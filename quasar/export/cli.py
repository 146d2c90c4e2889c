"""``quasar export onnx``, ``quasar export tensorrt`` and ``quasar export triton``.

Imports nothing heavy at module level: ``quasar.cli`` builds every stage's parser, including for
``quasar score``, which must run without torch.
"""

from __future__ import annotations

import argparse
import os
import time

from quasar.contract import PRECISIONS
from quasar.errors import QuasarError
from quasar.helpfmt import parse_hw


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="export fused ONNX graphs and TensorRT engines",
                              description="Export an (encoder, centroid pack) as one fused graph.")
    sub = p.add_subparsers(dest="export_command", required=True)

    o = sub.add_parser("onnx", help="fused ONNX graph (uint8 NHWC images -> scores, margins)")
    o.add_argument("--encoder", help="encoder id (default: the pack's encoder)")
    o.add_argument("--pack", required=True, help="centroid pack file, or 'default'")
    o.add_argument("--allow-unhashed", action="store_true",
                   help="accept a hand-made pack without a content_hash (packs are validated either way: "
                        "finite, non-zero centroids; 0 < logit scale <= 1000; at most 64 MiB)")
    o.add_argument("-o", "--output", required=True, help="output .onnx file")
    o.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="fp32; fp16 (encoder in half precision, for GPUs); int8 (static quantisation, "
                        "calibrated on --calib-dir)")
    o.add_argument("--size", type=int, help="crop size, or long-side cap for native-resolution encoders (default: the pack's)")
    o.add_argument("--opset", type=int, default=17, help="ONNX opset version (at least 17)")
    o.add_argument("--embedding", action="store_true",
                   help="also output the unit embedding the heads read ('embedding' [N, D]), for quasar cull")
    o.add_argument("--calib-dir", help="int8: directory of calibration images (default: the anchor photos)")
    o.add_argument("--int8-scheme", choices=("cpu", "tensorrt"), default="cpu",
                   help="int8: uint8 activations for ONNX Runtime CPU, or symmetric int8 for TensorRT")
    o.add_argument("--static", metavar="HxW",
                   help="static graph: input fixed to [batch, H, W, 3] (e.g. 384x512, multiples of the encoder's "
                        "stride), every shape computation folded, ops that ORT Mobile's NNAPI/CoreML EPs and "
                        "OpenCV DNN take; the runtime fits each image to H x W (--fit)")
    o.add_argument("--batch", type=int, default=1, help="static graphs: the fixed batch size")
    o.add_argument("--fit", choices=("stretch", "crop"), default=None,
                   help="static graphs: stretch the whole image to H x W, or cover and crop its centre "
                        "(default: stretch, chosen by measurement: benchmarks/README.md)")
    o.add_argument("--clip-form", choices=("clip", "relu"), default="clip",
                   help="static fp32/fp16 graphs: ReLU6 as Clip (ONNX Runtime fuses it into the convolution: "
                        "1.9x faster on the CPU than relu; every mobile EP takes it) or as Relu(x) - Relu(x - 6), "
                        "the form OpenCV DNN 4.x (the native library's OpenCV backend) loads (default: %(default)s)")
    o.set_defaults(func=_cmd_onnx)

    r = sub.add_parser("ort", help="ONNX Runtime format (.ort) for ORT Mobile, from a fused ONNX graph",
                       description="Convert a fused .onnx model to ONNX Runtime's .ort format (basic-level "
                                   "optimisation, metadata kept); `quasar score --model X.ort` scores it.")
    r.add_argument("model", help="fused .onnx file (a --static graph for NNAPI/CoreML)")
    r.add_argument("-o", "--output", help="output .ort file (default: MODEL with .ort)")
    r.set_defaults(func=_cmd_ort)

    t = sub.add_parser("tensorrt", help="TensorRT engine from a fused ONNX graph (needs a GPU)")
    t.add_argument("model", help="fused .onnx file")
    t.add_argument("-o", "--output", help="engine file (default: MODEL with .engine)")
    t.add_argument("--fp16", action="store_true", help="allow fp16 kernels (TensorRT 10; 11 uses the graph's types)")
    t.add_argument("--int8", action="store_true", help="int8 from a QDQ graph (export --precision int8)")
    t.add_argument("--min-batch", type=int, default=1, help="smallest batch the engine accepts")
    t.add_argument("--opt-batch", type=int, default=8, help="batch size TensorRT tunes its kernels for")
    t.add_argument("--max-batch", type=int, default=32, help="largest batch the engine accepts")
    t.add_argument("--min-side", type=int, help="dynamic-size graphs: smallest H/W (default: the spec's min size)")
    t.add_argument("--max-side", type=int, help="dynamic-size graphs: largest H/W (default: the spec's size cap)")
    t.add_argument("--opt-size", metavar="HxW", help="dynamic-size graphs: H and W to tune for, e.g. 384x512")
    t.add_argument("--workspace-gib", type=float, default=4.0,
                   help="GPU memory TensorRT may use while building, in GiB")
    t.add_argument("--timing-cache", help="timing cache file (created if missing, updated after the build)")
    t.add_argument("--verbose", action="store_true", help="show TensorRT's build log")
    t.set_defaults(func=_cmd_tensorrt)

    r = sub.add_parser("triton", help="Triton Inference Server model repository (config.pbtxt + model)",
                       description="Write a Triton model repository for a fused ONNX graph (ONNX Runtime backend) "
                                   "or a TensorRT engine: OUT/NAME/config.pbtxt with dynamic batching and the "
                                   "uint8 NHWC input, and OUT/NAME/1/model.onnx|model.plan. Not tested against a "
                                   "live Triton server (docs/scaling.md).")
    r.add_argument("out", metavar="OUT", help="model repository folder (created if missing)")
    r.add_argument("--model", default=None,
                   help="fused .onnx file or TensorRT engine (default: $QUASAR_MODEL, else the built-in model)")
    r.add_argument("--name", default="quasar", help="model name (the folder under OUT)")
    r.add_argument("--max-batch-size", type=int, default=32, help="largest batch Triton forms")
    r.add_argument("--preferred", type=int, nargs="+", default=None,
                   help="preferred dynamic batch sizes (default: 4, 8, 16... up to --max-batch-size)")
    r.add_argument("--queue-delay-us", type=int, default=2000, help="how long a request may wait to be batched")
    r.add_argument("--instances", type=int, default=1, help="model instances per device")
    r.add_argument("--kind", choices=("cpu", "gpu"), default=None,
                   help="instance kind (default: gpu for engines and --accelerator tensorrt, else cpu)")
    r.add_argument("--accelerator", choices=("tensorrt",), default=None,
                   help="ONNX models on GPU: run through ONNX Runtime's TensorRT execution provider")
    r.add_argument("--overwrite", action="store_true", help="replace OUT/NAME if it exists")
    r.set_defaults(func=_cmd_triton)


def _cmd_onnx(args: argparse.Namespace) -> int:
    from quasar.extras import EXPORT_MODULES, require_all

    require_all(EXPORT_MODULES, "export", "quasar export onnx")
    from quasar.export.onnx_export import check_output_path, load_pack

    # Cheap checks first: these fail in milliseconds, the export takes seconds to minutes.
    check_output_path(args.output)
    static = None
    if args.static:
        static = parse_hw(args.static, "--static")
    elif args.batch != 1 or args.fit or args.clip_form != "clip":
        raise QuasarError("--batch, --fit and --clip-form apply to --static graphs only")
    pack = load_pack(args.pack, allow_unhashed=args.allow_unhashed)
    calib = None
    if args.calib_dir:
        if args.precision != "int8":
            raise QuasarError("--calib-dir applies to --precision int8 only")
        from quasar.export.int8 import images_in_dir

        calib = images_in_dir(args.calib_dir)
    from quasar.export.onnx_export import DEFAULT_FIT, export_onnx

    t0 = time.perf_counter()
    path = export_onnx(args.encoder, pack, args.output, precision=args.precision, size=args.size,
                       opset=args.opset, calibration_images=calib, int8_scheme=args.int8_scheme,
                       static=static, batch=args.batch, fit=args.fit or DEFAULT_FIT, clip_form=args.clip_form,
                       embedding=args.embedding)
    mb = os.path.getsize(path) / 1e6
    shape = f", static {args.batch}x{static[0]}x{static[1]}x3 ({args.fit or DEFAULT_FIT})" if static else ""
    print(f"{path}: {args.precision}, encoder {args.encoder or pack.encoder}, {len(pack.heads)} heads{shape}, "
          f"{mb:.1f} MB in {time.perf_counter() - t0:.1f} s")
    return 0


def _cmd_ort(args: argparse.Namespace) -> int:
    from quasar.extras import require

    require("onnx", "export", "quasar export ort")
    from quasar.export.ort_format import export_ort

    t0 = time.perf_counter()
    path = export_ort(args.model, args.output)
    print(f"{path}: {os.path.getsize(path) / 1e6:.1f} MB in {time.perf_counter() - t0:.1f} s (sha256 in {path}.sha256)")
    return 0


def _cmd_tensorrt(args: argparse.Namespace) -> int:
    if not os.path.isfile(args.model):
        raise QuasarError(f"{args.model}: no such ONNX file")
    from quasar.extras import require

    require("onnx", "export", "quasar export tensorrt")
    from quasar.export.tensorrt import build_engine

    t0 = time.perf_counter()
    path = build_engine(args.model, args.output, fp16=args.fp16, int8=args.int8, min_batch=args.min_batch,
                        opt_batch=args.opt_batch, max_batch=args.max_batch, min_side=args.min_side,
                        max_side=args.max_side, opt_hw=parse_hw(args.opt_size, "--opt-size") if args.opt_size else None, timing_cache=args.timing_cache,
                        workspace_gib=args.workspace_gib, verbose=args.verbose)
    print(f"{path}: built in {time.perf_counter() - t0:.0f} s (sidecar {path}.json)")
    return 0


def _cmd_triton(args: argparse.Namespace) -> int:
    from quasar.export.triton import write_repository
    from quasar.shipped import shipped_model_path

    model = args.model or os.environ.get("QUASAR_MODEL") or shipped_model_path()
    if not model:
        raise QuasarError("no built-in model in this installation: give --model FILE")
    folder = write_repository(model, args.out, name=args.name, max_batch_size=args.max_batch_size,
                              preferred=args.preferred, queue_delay_us=args.queue_delay_us, instances=args.instances,
                              kind=args.kind, accelerator=args.accelerator, overwrite=args.overwrite)
    print(f"{folder}: Triton model repository entry for {model} (config.pbtxt; not tested against a live server)")
    return 0
