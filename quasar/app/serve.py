"""``quasar serve``: the scoring service (Ray Serve, the ray extra) until SIGINT/SIGTERM.

Building the parser imports nothing from Ray; ``run`` checks the extra first (one line if missing).
"""

from __future__ import annotations

import argparse
import errno
import signal
import sys
import threading

from quasar.errors import QuasarError
from quasar.helpfmt import non_negative_float, non_negative_int, positive_float, positive_int
from quasar.scale.auth import check_exposure, read_token_digests  # plain Python, no Ray
from quasar.scale.cluster import CONNECT_TIMEOUT_S  # a constant: importing the module imports no Ray
from quasar.scale.http import Limits, MiB

SERVE_EPILOG = """endpoints:
  POST /score     one image as the body (Content-Type image/* or application/octet-stream), or several
                  as multipart/form-data; ?margins=1 adds margins. 200 with scores, or a JSON
                  {"error": reason}: 400 (empty, not an image, truncated, too many pixels, too many
                  files, malformed multipart), 413 (body over --max-body-mb, or images over
                  --max-request-pixels in all), 415 (other content type), 408 (body not in within
                  --read-timeout-s), 503 (body slow while --max-slow-reads others are); 408 and 503
                  carry Retry-After; 401 without the bearer token when --token-file is given.
                  curl --data-binary without -H sends application/x-www-form-urlencoded: accepted
                  when the bytes are an image. Images of concurrent requests are batched fairly:
                  each batch takes one image per waiting client in turn
  GET  /healthz   {"status": "ok"} (liveness; no token needed)
  GET  /readyz    {"status": "ready", "replicas": ...}, or 503 and why not (readiness; no token needed)
  GET  /metadata  model, heads, precision, preprocessing spec, batching and limits
  GET  /metrics   Prometheus metrics of the answering replica
  GET  /docs      interactive API docs (the schema: GET /openapi.json)

  curl -s --data-binary @photo.jpg -H 'Content-Type: image/jpeg' http://127.0.0.1:8000/score
  curl -s -F a=@a.jpg -F b=@b.png http://127.0.0.1:8000/score
  curl -s -H "Authorization: Bearer $(cat tokens.txt)" ...      (with --token-file tokens.txt)

SIGINT/SIGTERM stop the service after the requests in flight are answered (--drain-s at most)."""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help="HTTP scoring service with dynamic batching (Ray Serve; the ray extra)",
        description="Serve a fused QUASAR model over HTTP on Ray Serve. Requests arriving together are "
                    "scored as one batch (dynamic batching). Binds to 127.0.0.1 unless --host says otherwise.",
        epilog=SERVE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", metavar="FILE", default=None,
                   help="fused ONNX model or TensorRT engine (default: $QUASAR_MODEL, else the built-in model)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind; 0.0.0.0 exposes the service to the network")
    p.add_argument("--port", type=int, default=8000, help="HTTP port")
    p.add_argument("--max-batch-size", type=positive_int, default=16,
                   help="images per dynamic batch; 1 turns dynamic batching off")
    p.add_argument("--batch-wait-ms", type=non_negative_float, default=10.0,
                   help="how long a batch waits for more images before it is scored")
    p.add_argument("--replicas", type=positive_int, default=None, help="scorer replicas (one Scorer each; default 1)")
    p.add_argument("--min-replicas", type=non_negative_int, default=None,
                   help="autoscale: fewest replicas (Ray Serve autoscaling; with --max-replicas)")
    p.add_argument("--max-replicas", type=positive_int, default=None, help="autoscale: most replicas")
    p.add_argument("--target-ongoing-requests", type=positive_float, default=None,
                   help="autoscale: requests per replica Serve aims at (default: --max-batch-size x 2, the "
                        "requests of two full batches)")
    p.add_argument("--replica-cpus", type=float, default=1.0, help="CPUs each replica reserves in Ray")
    p.add_argument("--workers", type=positive_int, default=None, help="decode threads per replica (default: cores, at most 8)")
    p.add_argument("--threads", type=positive_int, default=None, help="inference threads per replica (default: ONNX Runtime's)")
    p.add_argument("--backend", choices=("auto", "onnxruntime", "tensorrt", "torch"), default="auto",
                   help="inference engine (as for quasar score)")
    p.add_argument("--device", choices=("cpu", "cuda", "tensorrt"), default=None, help="device (as for quasar score)")
    p.add_argument("--max-body-mb", type=float, default=32.0, help="largest request body in MiB (larger: 413)")
    p.add_argument("--max-files", type=positive_int, default=64, help="most images in one multipart request (more: 400)")
    p.add_argument("--max-pixels", type=positive_int, default=64_000_000,
                   help="decompression-bomb limit per image, checked from the header before decoding")
    p.add_argument("--max-request-pixels", type=positive_int, default=Limits.max_request_pixels,
                   help="pixel budget of one request: its images' sizes (from their headers) added up; "
                        "more: 413 (keep it at least --max-pixels)")
    p.add_argument("--read-timeout-s", type=positive_float, default=Limits.read_timeout_s,
                   help="a request body must arrive within this (else 408)")
    p.add_argument("--max-slow-reads", type=positive_int, default=Limits.max_slow_reads,
                   help=f"slow request bodies read at once (more: 503); slow: still arriving "
                        f"{Limits.read_grace_s:g} s after the request, at under {Limits.min_body_rate // 1024} KiB/s")
    p.add_argument("--token-file", metavar="FILE", default=None,
                   help="bearer tokens, one a line: requests without one get 401 (not /healthz, /readyz)")
    p.add_argument("--insecure", action="store_true",
                   help="allow a --host other than loopback without --token-file")
    p.add_argument("--cors-origin", metavar="ORIGIN", action="append", default=[],
                   help="let browser pages from ORIGIN call the service (repeatable; default: CORS off)")
    p.add_argument("--access-log", metavar="FILE", default=None,
                   help="JSON-lines access log each replica appends to (default: quasar-access.jsonl in Ray's "
                        "serve log folder, <session>/logs/serve/; - for the replica's stderr)")
    p.add_argument("--drain-s", type=non_negative_float, default=30.0,
                   help="on shutdown, how long replicas may take to answer the requests they hold")
    p.add_argument("--address", metavar="ADDR", default=None,
                   help="join this Ray cluster, e.g. auto or HOST:6379 (default: start a private local cluster, "
                        "listening on 127.0.0.1 only; docs/scaling.md)")
    p.add_argument("--connect-timeout", type=positive_float, default=CONNECT_TIMEOUT_S, metavar="S",
                   help="with --address: seconds joining the cluster may take before giving up")
    p.set_defaults(func=run)


def check_port_free(host: str, port: int) -> None:
    """One line (QuasarError) when ``host:port`` cannot be bound: another program, or another
    ``quasar serve`` (Serve's proxy binds with SO_REUSEPORT, so a second one would otherwise share the
    port and the two models would answer in turn). Checked by binding it once, before Ray starts."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise QuasarError(f"--host {host}: not an address of this machine ({e.strerror})") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed earlier run's TIME_WAIT is no owner
        try:
            s.bind(addr)
        except OSError as e:
            why = "already in use (another quasar serve or another program)" if e.errno == errno.EADDRINUSE \
                else (e.strerror or str(e))
            raise QuasarError(f"quasar serve: port {port} on {host}: {why}; choose another --port") from None


def scaling(args: argparse.Namespace) -> dict:
    """The replica keywords of :func:`quasar.scale.serve.build_app` from the options (one line if they clash)."""
    auto = args.min_replicas is not None or args.max_replicas is not None
    if auto and args.replicas is not None:
        raise QuasarError("--replicas is a fixed count; --min-replicas/--max-replicas autoscale: give one or the other")
    if not auto and args.target_ongoing_requests is not None:
        raise QuasarError("--target-ongoing-requests needs --min-replicas or --max-replicas (autoscaling)")
    if auto:
        lo, hi = args.min_replicas, args.max_replicas
        if lo is not None and hi is not None and lo > hi:
            raise QuasarError(f"--min-replicas {lo} is over --max-replicas {hi}")
        return {"min_replicas": lo, "max_replicas": hi, "target_ongoing_requests": args.target_ongoing_requests}
    return {"replicas": args.replicas or 1}


def run(args: argparse.Namespace) -> int:
    from quasar.scale.cluster import connect, disconnect, require_ray

    if not 0 < args.port < 65536:
        raise QuasarError(f"--port must be 1..65535, got {args.port}")
    digests = read_token_digests(args.token_file) if args.token_file else ()
    check_exposure(args.host, bool(digests), args.insecure)
    replicas = scaling(args)
    require_ray("quasar serve")
    check_port_free(args.host, args.port)
    from quasar.runtime.model import default_model_path, load_model_info

    info = load_model_info(args.model or default_model_path())  # a bad model is one line, before Ray starts
    started = connect(args.address, what="quasar serve", timeout_s=args.connect_timeout)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # replaces Ray's handler (exit at once); also during start-up
        signal.signal(sig, lambda *_: stop.set())
    try:
        from quasar.scale import serve as service

        options = service.ServiceOptions(
            max_batch_size=args.max_batch_size, batch_wait_ms=args.batch_wait_ms, workers=args.workers,
            threads=args.threads, backend=args.backend, device=args.device,
            limits=Limits(max_body_bytes=int(args.max_body_mb * MiB), max_files=args.max_files,
                          max_pixels=args.max_pixels, max_request_pixels=args.max_request_pixels,
                          read_timeout_s=args.read_timeout_s, max_slow_reads=args.max_slow_reads),
            token_digests=digests, cors_origins=tuple(args.cors_origin), access_log=args.access_log)
        app = service.build_app(info.path, options, replica_cpus=args.replica_cpus, graceful_shutdown_s=args.drain_s,
                                **replicas)
        service.start(app, args.host, args.port)
        batching = "off" if args.max_batch_size == 1 else f"up to {args.max_batch_size}"
        print(f"quasar serve: {info.path} on http://{args.host}:{args.port} (POST /score, GET /healthz, "
              f"/readyz, /metadata, /metrics, /docs); {'bearer token required' if digests else 'no token'}; "
              f"batching {batching}; access log {args.access_log or service.default_access_log()}",
              file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            pass
        print("quasar serve: stopping (answering requests in flight)", file=sys.stderr, flush=True)
        service.stop()
    finally:
        disconnect(started)
    return 0
