"""``quasar perf``: the command line. Building the parser imports nothing heavy (no LoadGen, no
matplotlib, no ONNX Runtime); they are imported when the command runs."""

from __future__ import annotations

import argparse

from quasar.helpfmt import add_workload_options, positive_float, positive_int
from quasar.perf.scenarios import SERVER_CONFIRM  # stdlib only: building the parser stays light

DESCRIPTION = """\
Latency and throughput of any QUASAR model on any backend, driven by MLPerf LoadGen's scenarios:
  single-stream  one image at a time: p50/p90/p99 latency (the camera-app case)
  multi-stream   queries of 8 images, one after another: p99 latency per query
  offline        all images at once: throughput (the batch-server case)
  server         Poisson arrivals: the highest QPS with p99 <= --target-latency (LoadGen's own search)
each end to end (encoded files -> scores) and model only (preprocessed uint8 tensors -> scores).
Several --model/--backend/--precision values are measured side by side, interleaved, with ratios.
Writes report.json, report.md, plots and LoadGen's own logs into -o DIR. Needs the perf extra:
pip install 'quasar-engine[perf]'. See docs/perf.md for how to read each number."""


def _list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _ints(text: str) -> list[int]:
    try:
        return [positive_int(t) for t in _list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, not {text!r}") from None


def register(subparsers) -> None:
    p = subparsers.add_parser("perf", help="latency/throughput of any model and backend under MLPerf LoadGen scenarios",
                              description=DESCRIPTION)
    p.add_argument("--model", "-m", action="append", default=None, metavar="M",
                   help="fused model file (ONNX, or a TensorRT engine), or 'default'; repeat or comma-separate to "
                        "compare several [default: default]")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--images", metavar="DIR", default=None,
                     help="score the image files in DIR (recursively, sorted; files that cannot be decoded are "
                          "skipped with a line each)")
    src.add_argument("--synthetic", metavar="HxW", default=None,
                     help="score generated JPEGs of this size [default when no --images: 3000x4000, 12 MP]")
    add_workload_options(p, count_help="images to use: synthetic images to make, or at most N files of DIR "
                                       "[default: 16 synthetic, 64 files]",
                         repeat_help="repetitions of every test, configurations interleaved (medians and spread "
                                     "in the report)", repeat_default=1)
    p.add_argument("--backend", "-b", action="append", default=None, metavar="B",
                   help="onnxruntime (CPU), onnxruntime-cuda, onnxruntime-tensorrt, tensorrt, torch, native or auto; "
                        "repeat or comma-separate to compare [default: onnxruntime]")
    p.add_argument("--precision", action="append", default=None, metavar="P",
                   help="fp32, fp16, int8: the default model in these precisions, or a check that each --model "
                        "file is one of them; comma-separate for several [default: fp32 for 'default', a file's own]")
    p.add_argument("--batch", type=_ints, default=None, metavar="N[,N...]",
                   help="batch sizes, comma-separated [default: the runtime's default for the backend: 4 on CPU]")
    p.add_argument("--scenario", "-s", action="append", default=None, metavar="S",
                   help="single-stream, multi-stream, offline, server or all; repeat or comma-separate "
                        "[default: single-stream,offline]")
    p.add_argument("--mode", action="append", default=None, metavar="MODE",
                   help="end-to-end, model-only, or both (comma-separated) [default: both]")
    p.add_argument("--duration", type=positive_float, default=10.0, metavar="S",
                   help="seconds each LoadGen test runs at least (its min_duration)")
    p.add_argument("--min-queries", type=positive_int, default=64, metavar="N",
                   help="queries each SingleStream/MultiStream/Server test sends at least (64: enough for "
                        "LoadGen's p90 early-stopping estimate)")
    p.add_argument("--target-latency", type=positive_float, default=100.0, metavar="MS",
                   help="Server: the p99 latency bound the QPS search keeps")
    p.add_argument("--server-qps", type=positive_float, default=None, metavar="Q",
                   help="Server: test this QPS only, instead of LoadGen's search for the highest one")
    p.add_argument("--server-confirm", choices=SERVER_CONFIRM, default=SERVER_CONFIRM[0],
                   help="Server: 'valid' reruns the reported test (the QPS found, or --server-qps) with the queries "
                        "LoadGen's early stopping says a p99 needs (hundreds: minutes at a low QPS), so that LoadGen "
                        "can call it VALID; 'quick' runs it once for --duration")
    p.add_argument("--multi-stream-samples", type=positive_int, default=8, metavar="N", help="MultiStream: images per query")
    p.add_argument("--workers", type=positive_int, default=None, metavar="N",
                   help="end to end: decode threads [default: the runtime's, one per core up to 8; native: one "
                        "per core]")
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="inference intra-op threads [default: the library's]")
    p.add_argument("--native-lib", default=None, metavar="PATH",
                   help="--backend native: the libquasar shared library [default: $QUASAR_NATIVE_LIB, else "
                        "build/native/libquasar.so of this source tree, else the system's]")
    p.add_argument("--plots", choices=("png", "svg", "none"), default="png", help="plot format")
    p.add_argument("-o", "--out", default="perf-report", metavar="DIR",
                   help="report folder: report.json, report.md, plots/, loadgen/")
    p.set_defaults(func=run)


def options_from_args(args: argparse.Namespace, argv: list[str] | None = None):
    from quasar.perf.run import MODES, Options
    from quasar.perf.scenarios import ORDER, Settings, scenario_name

    def flat(values, default):
        return [x for v in (values or default) for x in _list(v)]

    scen = flat(args.scenario, ["single-stream,offline"])
    scen = list(ORDER) if "all" in scen else list(dict.fromkeys(scenario_name(s) for s in scen))
    modes = flat(args.mode, [",".join(MODES)])
    modes = list(MODES) if "both" in modes else list(dict.fromkeys(modes))
    settings = Settings(duration_s=args.duration, min_queries=args.min_queries, target_latency_ms=args.target_latency,
                        server_qps=args.server_qps, multi_stream_samples=args.multi_stream_samples,
                        server_confirm=args.server_confirm)
    return Options(models=flat(args.model, ["default"]), backends=flat(args.backend, ["onnxruntime"]),
                   precisions=flat(args.precision, []) or None, images=args.images, synthetic=args.synthetic,
                   count=args.count, batches=args.batch, scenarios=scen, modes=modes, settings=settings,
                   repeat=args.repeat, out=args.out, plots=args.plots, workers=args.workers, threads=args.threads,
                   native_lib=args.native_lib, argv=argv)


def command_line(args: argparse.Namespace) -> list[str]:
    """The arguments as given on the command line, else rebuilt from ``args`` (a call from Python)."""
    import sys

    if sys.argv[1:2] == ["perf"]:
        return sys.argv[2:]
    out = []
    for k, v in sorted(vars(args).items()):
        if k in ("func", "command") or v is None:
            continue
        for x in v if isinstance(v, list) else [v]:
            out += [f"--{k.replace('_', '-')}", ",".join(map(str, x)) if isinstance(x, list) else str(x)]
    return out


def run(args: argparse.Namespace) -> int:
    import sys

    from quasar.perf import report
    from quasar.perf.run import run as run_perf

    opts = options_from_args(args, command_line(args))
    rep = run_perf(opts)
    report.print_summary(rep)
    print(f"quasar perf: wrote {opts.out}/report.json, {opts.out}/report.md"
          + (f" and {len(rep.get('plots', []))} plots" if rep.get("plots") else ""), file=sys.stderr)
    return 0
