"""``quasar score``: score images and folders into CSV / JSON Lines, resumably.

Per-image problems (unreadable, corrupt, too large...) become rows with an ``error`` and a summary
on stderr. Exit status (see ``EXIT_STATUS``): 0 when at least one input was scored, 1 when none
was (or, with ``--strict``, when any failed), 2 for fatal problems (bad model, bad arguments, an
unwritable output), which :func:`quasar.cli.main` reports as one line.
"""

from __future__ import annotations

import argparse
import sys
import time

from quasar.errors import QuasarError
from quasar.helpfmt import positive_float, positive_int

MAX_LISTED_FAILURES = 20
SCORE_MEANING = """What a score means:
  Every score is in 0..1; higher is better (Scorer.lower_better is False, Scorer.score_range is
  (0, 1)). `quality` is the overall score; --explain adds the default model's explanation heads
  (sharpness, noise, compression, exposure, color, spatial, optics: one per defect family, fitted so
  that the lowest names the defect) and a `reason` column: the lowest when it is below REASON_BELOW
  (quasar.runtime.explain), else empty. Each head is
  calibrated on its anchors to read as 1 - level/5 of 32 distortion types (the 25 of KADID-10k and
  camera defects beyond it; pristine 1, strongest of five levels 0). Typical values on photos never used as anchors, and how
  JPEG saving moves them: the README's "What a score means" (from benchmarks/quality_synthetic.py)."""
EXIT_STATUS = """exit status:
  0    at least one input was scored (failed inputs are rows with an error and are listed on stderr)
  1    no input was scored: every input failed, or none was found (all already done with --resume
       is 0); with --strict, any input failed
  2    bad arguments, an unusable model or an unwritable output file (one line on stderr)
  130  interrupted (rows written so far are kept; continue with --resume)
  141  the output pipe was closed (e.g. `| head`): ends quietly, like other Unix tools

paths in the output: valid UTF-8 as is; a backslash is doubled; bytes that are not UTF-8 and control
characters are written \\xNN. --resume matches rows by absolute, normalised path."""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "score", help="score images with a fused QUASAR model",
        description="Score image files and folders. One output row per input: path, one P(good) column "
                    "per head, error. Every path named on the command line gets a row (a folder with no "
                    "images gets an error row). Rows are flushed as they are written; --resume skips "
                    "paths already in the output file.",
        epilog=SCORE_MEANING + "\n\n" + EXIT_STATUS, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files and/or folders")
    p.add_argument("-r", "--recursive", action="store_true", help="descend into sub-folders")
    add_follow_links(p)
    p.add_argument("--model", metavar="FILE", default=None,
                   help="fused ONNX model or TensorRT engine (default: $QUASAR_MODEL, else the built-in model)")
    p.add_argument("-o", "--output", default="-", metavar="OUT",
                   help="out.csv, out.jsonl or - for stdout (CSV) (default: -)")
    p.add_argument("--format", choices=("csv", "jsonl"), default=None,
                   help="override the format inferred from OUT (default: jsonl for .jsonl/.ndjson/.json, else csv)")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="images per inference batch (default: 4 on CPU, 32 on CUDA; capped by an engine's profile)")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="decode/preprocess threads; peak memory grows with workers x --max-pixels "
                        "(default: CPU cores, at most 8)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="inference threads (intra-op) (default: ONNX Runtime's or torch's own choice)")
    p.add_argument("--backend", choices=("auto", "onnxruntime", "tensorrt", "torch"), default="auto",
                   help="inference engine. auto: TensorRT for an engine file, else ONNX Runtime (on CUDA when "
                        "onnxruntime-gpu is installed); torch rebuilds the model in PyTorch (needs the export extra)")
    p.add_argument("--device", choices=("cpu", "cuda", "tensorrt"), default=None,
                   help="device for onnxruntime/torch (tensorrt: ONNX Runtime's TensorRT EP) "
                        "(default: the backend's best available)")
    p.add_argument("--resume", action="store_true", help="append to OUT, skipping paths it already has")
    p.add_argument("--margins", action="store_true", help="also write <head>_margin columns: the logit before the sigmoid, over logit_scale "
                        "(a linear head: projection + bias; a centroid head: cos_good - cos_bad)")
    p.add_argument("--explain", action="store_true",
                   help="also write the model's explanation heads (the default model: sharpness, noise, "
                   "compression, exposure, color, spatial and optics besides quality) and a reason column: the "
                   "weakest of them when it reads below level 2 of its defects, to say why a photo is poor")
    p.add_argument("--embeddings", action="store_true",
                   help="also write each image's unit embedding (the feature the heads read, same forward pass): "
                        "an 'embedding' list per JSONL row, or OUT.embeddings.npy beside a CSV (ONNX models)")
    p.add_argument("--report", metavar="HTML", default=None,
                   help="also write a visual HTML report of the results (see quasar report)")
    p.add_argument("--max-pixels", type=positive_int, default=None,
                   help="decompression-bomb limit per image in pixels, checked from the header before "
                        "decoding; also bounds memory: a decode worker needs about 7.4 bytes per pixel "
                        "for 8-bit images, 16 for 16-bit RGBA PNGs (docs/architecture.md) "
                        "(default: about 179 MP)")
    p.add_argument("--no-reduced-decode", action="store_true",
                   help="always decode JPEGs at full resolution (slower; for exact parity checks)")
    p.add_argument("--no-shape-sessions", action="store_true",
                   help="run every batch on the one dynamic ONNX Runtime session (default on CPU: the shapes "
                        "seen most get sessions with their sizes fixed, at most 4; same scores, faster)")
    p.add_argument("--strict", action="store_true", help="exit 1 if any input failed (default: only if none was scored)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, warnings or summary on stderr")
    add_ray_options(p)
    add_service_options(p)
    add_torch_options(p)
    p.set_defaults(func=run)


def add_ray_options(p) -> None:
    from quasar.scale.cluster import CONNECT_TIMEOUT_S  # a constant: imports no Ray

    r = p.add_argument_group("Ray (the ray extra; docs/scaling.md)")
    r.add_argument("--ray", action="store_true",
                   help="score on Ray Data actors: a local Ray cluster, or the one at --address (same output and --resume)")
    r.add_argument("--address", metavar="ADDR", default=None,
                   help="with --ray: join this Ray cluster (e.g. auto, or HOST:6379); every node must see the "
                        "files and the model at the same paths (default: start a private local cluster, "
                        "listening on 127.0.0.1 only)")
    r.add_argument("--connect-timeout", type=positive_float, default=None, metavar="S",
                   help="with --address: seconds joining the cluster may take before giving up "
                        f"(default: {CONNECT_TIMEOUT_S:g})")
    r.add_argument("--ray-actors", type=positive_int, default=None, metavar="N",
                   help="with --ray: scorer actors (default: cluster CPUs / --ray-actor-cpus)")
    r.add_argument("--ray-actor-cpus", type=positive_int, default=None, metavar="N",
                   help="with --ray: CPUs per actor, also its decode workers and inference threads "
                        "(default: all cores for a local cluster, else 1)")
    r.add_argument("--ray-batch", type=positive_int, default=None, metavar="N",
                   help="with --ray: paths per actor call (default: 64, less for small inputs)")


def add_torch_options(p) -> None:
    t = p.add_argument_group("torch backend (--backend torch; its CUDA side is not yet run)")
    t.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default=None,
                   help="the encoder's precision; the heads stay float32 (default: fp32)")
    t.add_argument("--device-decode", choices=("auto", "on", "off"), default=None,
                   help="decode JPEGs with torchvision on the device and resize there (default: auto, on for cuda)")
    t.add_argument("--compile", action="store_true", help="torch.compile the model (cuda only)")
    t.add_argument("--cuda-graphs", action="store_true", help="replay one CUDA graph per batch shape (cuda only)")


def add_service_options(p) -> None:
    s = p.add_argument_group("a running quasar serve (quasar.client; docs/scaling.md)")
    s.add_argument("--url", metavar="URL", default=None,
                   help="score through the service at URL (e.g. http://127.0.0.1:8000): files are read here and "
                        "sent in multipart requests; same output and --resume as local scoring")
    s.add_argument("--token-file", metavar="FILE", default=None,
                   help="with --url: a file whose first line is the service's bearer token")
    s.add_argument("--request-files", type=positive_int, default=None, metavar="N",
                   help="with --url: most files per request (default: 16, at most the service's --max-files)")
    s.add_argument("--retries", type=int, default=None, metavar="N",
                   help="with --url: tries again after a busy answer (408/429/503, honouring Retry-After) or a "
                        "dropped connection, with exponential backoff (default: 5)")


# what --url cannot take: the model and how it runs belong to the service
NOT_WITH_URL = (("ray", "--ray"), ("model", "--model"), ("device", "--device"), ("batch_size", "--batch-size"),
                ("workers", "--workers"), ("threads", "--threads"), ("embeddings", "--embeddings"),
                ("max_pixels", "--max-pixels"), ("no_reduced_decode", "--no-reduced-decode"))


def _validate_url(args: argparse.Namespace) -> None:
    if getattr(args, "url", None) is None:
        given = [flag for name, flag in (("token_file", "--token-file"), ("request_files", "--request-files"),
                                         ("retries", "--retries")) if getattr(args, name, None) is not None]
        if given:
            raise QuasarError(f"{', '.join(given)} need{'s' if len(given) == 1 else ''} --url")
        return
    given = [flag for name, flag in NOT_WITH_URL if getattr(args, name, None)]
    if args.backend != "auto":
        given.append("--backend")
    if given:
        raise QuasarError(f"{', '.join(given)} cannot be combined with --url: the service runs the model "
                          "(its own quasar serve options say how)")
    if args.retries is not None and args.retries < 0:
        raise QuasarError(f"--retries must be 0 or more, got {args.retries}")


FOLLOW_LINKS_HELP = ("with -r, follow every symlinked sub-folder (default: only those pointing inside the folder "
                     "being scanned, each real folder listed once, so a link to / cannot walk the whole disk)")


def add_follow_links(p) -> None:
    p.add_argument("--follow-links", action="store_true", help=FOLLOW_LINKS_HELP)


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse outputs that could destroy an input (quasar.runtime.outfile), before any work starts."""
    from quasar.runtime.outfile import check_output

    check_output(args.output, args.paths, what="output")
    report = getattr(args, "report", None)
    if report:
        check_output(report, [*args.paths, args.output], what="report", report=True)


def _validate(args: argparse.Namespace) -> None:
    """Every check of the arguments and outputs, before anything is loaded or written."""
    if args.resume and args.output == "-":
        raise QuasarError("--resume needs an output file (-o FILE), not stdout")
    check_outputs(args)
    _validate_url(args)
    if not args.ray and (args.address or args.ray_actors or args.ray_actor_cpus or args.ray_batch
                         or args.connect_timeout is not None):
        raise QuasarError("--address, --connect-timeout, --ray-actors, --ray-actor-cpus and --ray-batch need --ray")
    if args.ray and getattr(args, "embeddings", False):
        raise QuasarError("--embeddings is not available with --ray yet: score locally to write embeddings")
    if torch_options(args) is not None and (args.backend != "torch" or args.ray):
        raise QuasarError("--precision, --device-decode, --compile and --cuda-graphs need --backend torch (not --ray)")


def torch_options(args: argparse.Namespace):
    """The torch backend's options from the command line, or None when none was given."""
    given = {k: v for k, v in (("precision", getattr(args, "precision", None)),
                               ("device_decode", getattr(args, "device_decode", None)),
                               ("compile", getattr(args, "compile", False) or None),
                               ("cuda_graphs", getattr(args, "cuda_graphs", False) or None)) if v is not None}
    if not given:
        return None
    from quasar.runtime.backends.torch_options import TorchOptions

    return TorchOptions(**given)


def _build(args: argparse.Namespace):
    """(scorer, writer, keys already done, head columns): the model loaded, the output opened."""
    from quasar.io.decode import DEFAULT_MAX_PIXELS
    from quasar.runtime.output import open_writer
    from quasar.runtime.pathtext import encode_text

    if getattr(args, "url", None):
        from quasar.client import ServiceClient
        from quasar.client.transport import read_token_file

        token = read_token_file(args.token_file) if args.token_file else None
        options = {k: v for k, v in (("batch_files", args.request_files), ("retries", args.retries)) if v is not None}
        scorer = ServiceClient(args.url, token, margins=args.margins, **options)
    elif args.ray:
        from quasar.scale.raycli import RayScorer

        scorer = RayScorer(args.model, address=args.address, connect_timeout=args.connect_timeout,
                           actors=args.ray_actors, actor_cpus=args.ray_actor_cpus,
                           batch_size=args.ray_batch, margins=args.margins, backend=args.backend, device=args.device,
                           workers=args.workers, threads=args.threads, max_pixels=args.max_pixels or DEFAULT_MAX_PIXELS,
                           reduced_decode=not args.no_reduced_decode, inference_batch=args.batch_size)
    else:
        from quasar.runtime.scorer import Scorer

        scorer = Scorer(args.model, backend=args.backend, device=args.device, batch_size=args.batch_size,
                        workers=args.workers, threads=args.threads,
                        max_pixels=args.max_pixels or DEFAULT_MAX_PIXELS, reduced_decode=not args.no_reduced_decode,
                        embeddings=getattr(args, "embeddings", False),
                        shape_sessions=not args.no_shape_sessions, torch_options=torch_options(args))
    try:
        heads = scorer.info.explained_heads if args.explain else scorer.info.summary_heads
        reasons = scorer.info.explain_heads if args.explain else ()
        writer, done = open_writer(args.output, args.format, heads, margins=args.margins, reasons=reasons,
                                   resume=args.resume, embeddings=getattr(args, "embeddings", False))
    except BaseException:
        scorer.close()
        raise
    if not args.quiet:
        for note in writer.notes:
            print(f"quasar score: {encode_text(args.output)}: {note}", file=sys.stderr)
    return scorer, writer, done, heads


class _Tally:
    """What a run counts as it goes: rows written, failures, warnings, inputs skipped by --resume."""

    def __init__(self) -> None:
        self.n = self.warned = self.skipped = 0
        self.failures: list[tuple[str, str]] = []
        self.interrupted = False


def _execute(args: argparse.Namespace, scorer, writer, done, tally: _Tally) -> list:
    """Score every input not yet done, writing each record as it comes; returns the records kept for
    ``--report`` when the rows go to stdout. Closes the writer and the scorer, also on Ctrl-C."""
    from quasar.runtime.pathtext import encode_text, resume_key
    from quasar.runtime.progress import count_inputs, make_bar, progress_enabled
    from quasar.runtime.sources import iter_items

    def todo():
        for item in iter_items(args.paths, args.recursive, follow_links=args.follow_links):
            if done and resume_key(item.label) in done:
                tally.skipped += 1
                continue
            yield item

    show = progress_enabled(args.output, args.quiet)
    total = None
    if show:  # a listing-only count for the bar's total and ETA (None: too many files to count cheaply)
        total = count_inputs(args.paths, args.recursive, follow_links=args.follow_links,
                             skip=(lambda p: resume_key(p) in done) if done else None)
    bar = make_bar(total, show)
    records = scorer.score_items(todo())
    keep = getattr(args, "report", None) and args.output == "-"
    shown: list = []  # records for --report when the rows go to stdout (else the file is read back)
    try:
        for rec in records:
            writer.write(rec)
            if keep:
                shown.append(type(rec)(rec.source, rec.scores, error=rec.error))
            tally.n += 1
            if rec.error is not None:
                tally.failures.append((rec.source, rec.error))
                bar.set_postfix(failed=len(tally.failures), refresh=False)
            elif rec.warning is not None:
                tally.warned += 1
                if not args.quiet and tally.warned <= MAX_LISTED_FAILURES:
                    bar.write(f"quasar score: warning: {encode_text(rec.source)}: {rec.warning}", file=sys.stderr)
            bar.update()
    except KeyboardInterrupt:
        tally.interrupted = True
    finally:
        records.close()  # stops the pipeline's threads before the backend goes away
        bar.close()
        try:
            writer.close()
        finally:
            scorer.close()
    return shown


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()  # the summary's time covers the whole run, model loading included
    from quasar.io.decode import quiet_opencv

    _validate(args)
    quiet_opencv()
    scorer, writer, done, heads = _build(args)
    tally = _Tally()
    shown = _execute(args, scorer, writer, done, tally)
    if tally.interrupted:
        print(_interrupted_line(args.output, tally.n), file=sys.stderr)
        return EXIT_INTERRUPTED
    if getattr(args, "report", None):
        _write_report(args.report, args, heads, shown)
    if not args.quiet:
        _summary(tally.n, tally.failures, tally.skipped, time.perf_counter() - t0, tally.warned)
    return exit_status(tally.n, len(tally.failures), tally.skipped, strict=args.strict)


EXIT_INTERRUPTED = 130


def _write_report(report: str, args: argparse.Namespace, heads, shown: list) -> None:
    """``--report``: from the output file (all its rows, resumed ones too), or the records shown on stdout."""
    from quasar.report.build import build_report
    from quasar.report.data import from_records, read_results

    # the paths are the ones this run was given (and read): no need to confine them to a folder
    data = from_records(shown, heads) if args.output == "-" else read_results(args.output, confine=False)
    stats = build_report(data, report, workers=args.workers)
    if not args.quiet:
        print(f"quasar score: report {report}: {stats['photos']} photos, {stats['bytes'] / 2**20:.1f} MiB, "
              f"{stats['seconds']:.1f} s", file=sys.stderr)


def _interrupted_line(output: str, n: int) -> str:
    from quasar.runtime.pathtext import encode_text

    rows = f"{n} row{'s' if n != 1 else ''}"
    if output == "-":
        return f"quasar score: interrupted after {rows}"
    return (f"quasar score: interrupted; the {rows} written to {encode_text(output)} are kept: run the same "
            "command with --resume to continue")


def exit_status(n: int, failed: int, skipped: int, strict: bool = False) -> int:
    """0 when something was scored (or everything was already done); 1 when nothing was, or with
    ``strict`` when anything failed. See ``EXIT_STATUS``."""
    if strict and failed:
        return 1
    if n - failed > 0:
        return 0
    return 0 if n == 0 and skipped else 1


def _summary(n: int, failures: list[tuple[str, str]], skipped: int, seconds: float, warned: int = 0) -> None:
    from quasar.runtime.pathtext import encode_text

    err = sys.stderr
    rate = f", {n / seconds:.1f} img/s" if seconds > 0 and n else ""
    extra = f", {skipped} already in the output" if skipped else ""
    if warned:
        extra += f", {warned} with a warning"
    print(f"quasar score: {n - len(failures)} of {n} scored, {len(failures)} failed{extra} "
          f"({seconds:.1f} s{rate})", file=err)
    if n == 0 and not skipped:
        print("quasar score: no images found (folders need -r to include sub-folders)", file=err)
    for path, reason in failures[:MAX_LISTED_FAILURES]:
        print(f"  {encode_text(path)}: {encode_text(reason)}", file=err)
    if len(failures) > MAX_LISTED_FAILURES:
        print(f"  ... and {len(failures) - MAX_LISTED_FAILURES} more (see the error column)", file=err)
