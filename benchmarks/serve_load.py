"""Load test of ``quasar serve``: throughput and latency at 1, 8 and 32 clients, batching on vs off.

    python benchmarks/serve_load.py [--quick] [--images N]

Starts a local Ray cluster and the service on 127.0.0.1 (a free port; nothing else is contacted),
then runs closed-loop clients (each sends one image, waits for the answer, sends the next), a
bounded number of requests per level (and at most ``--level-s`` seconds):

* dynamic batching on (``--max-batch-size 16 --batch-wait-ms 10``) and off (``1``), 1/8/32 clients;
* a mixed run, batching on, 32 clients, every 10th request bad (not an image, truncated, empty,
  wrong content type, too many files, oversized body, decompression bomb): no good request may fail
  and every bad one must get its 4xx JSON error;
* the offline batch throughput on the same images (one in-process ``Scorer.score`` over all of
  them, twice the set), measured right before and right after each block of load levels (the
  service idle meanwhile), is that block's reference: on a shared machine only neighbours compare.

Writes ``results/serve_load.{json,md}``. About 5 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from quasar_bench.results import write_results
from scale_overhead import photo_paths

from quasar.machine import machine_info, usable_cores

BOUNDARY = "quasar-bench-boundary"


def multipart(n: int) -> bytes:
    parts = [f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=f; filename=\"{i}.png\"\r\n\r\nx\r\n".encode()
             for i in range(n)]
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def bad_requests(good: bytes, max_body: int) -> list[tuple[str, bytes, str, int]]:
    """(kind, body, content type, expected status)."""
    import cv2

    header_only = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()[:33]
    bomb = header_only[:16] + (60_000).to_bytes(4, "big") * 2 + header_only[24:]  # IHDR says 60000x60000
    return [("not an image", b"%PDF-1.4\n" + b"x" * 500, "application/octet-stream", 400),
            ("truncated", good[: len(good) // 3], "image/png", 400),
            ("empty body", b"", "image/png", 400),
            ("wrong content type", b"{}", "application/json", 415),
            ("too many files", multipart(80), f"multipart/form-data; boundary={BOUNDARY}", 400),
            ("oversized body", b"\x89PNG" + b"\0" * (max_body + 1), "image/png", 413),
            ("decompression bomb", bomb, "image/png", 400)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load(port: int, images: list[bytes], clients: int, requests: int, limit_s: float, bad=None) -> dict:
    """Closed-loop clients; every 10th request is bad when ``bad`` is given."""
    counter = itertools.count()
    lock = threading.Lock()
    results: list[tuple[float, int, bool, str | None]] = []  # latency, status, as expected, bad kind
    deadline = time.monotonic() + limit_s

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while time.monotonic() < deadline:
            with lock:
                k = next(counter)
            if k >= requests:
                break
            kind = None
            if bad is not None and k % 10 == 9:
                kind, body, ctype, want = bad[(k // 10) % len(bad)]
            else:
                body, ctype, want = images[k % len(images)], "image/png", 200
            t = time.perf_counter()
            try:
                conn.request("POST", "/score", body=body, headers={"Content-Type": ctype})
                r = conn.getresponse()
                data = r.read()
                status = r.status
                answer = json.loads(data)
                ok = status == want and (("scores" in answer) if want == 200 else ("error" in answer))
            except (OSError, http.client.HTTPException, ValueError):
                status, ok = -1, False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            with lock:
                results.append((time.perf_counter() - t, status, ok, kind))
        conn.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    good = [r for r in results if r[3] is None]
    lat = np.array([r[0] for r in good]) * 1000
    by_kind: dict = {}
    for r in results:
        if r[3] is not None:
            by_kind.setdefault(r[3], []).append(r[1])
    return {"clients": clients, "requests": len(results), "seconds": wall,
            "img_per_s": len(good) / wall, "good_failed": sum(not r[2] for r in good),
            "bad_unexpected": sum(not r[2] for r in results if r[3] is not None),
            "p50_ms": float(np.percentile(lat, 50)), "p95_ms": float(np.percentile(lat, 95)),
            "p99_ms": float(np.percentile(lat, 99)), "bad_statuses": {k: sorted(set(v)) for k, v in by_kind.items()}}


def offline(images: list[bytes]) -> float:
    from quasar.runtime import Scorer

    with Scorer() as s:
        s.score(images[:4])
        t = time.perf_counter()
        recs = s.score(images)
        assert all(r.ok for r in recs)
        return len(images) / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=48, help="distinct photos sent (round robin)")
    ap.add_argument("--level-s", type=float, default=90.0, help="time limit per load level")
    ap.add_argument("--quick", action="store_true", help="fewer requests per level (smoke run)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = ap.parse_args(argv)
    scale = 0.25 if args.quick else 1.0
    images = [open(p, "rb").read() for p in photo_paths(args.images)]
    offline_images = images * 2
    levels = {1: int(24 * scale) or 4, 8: int(64 * scale) or 8, 32: int(160 * scale) or 32}
    from ray import serve

    from quasar.scale import serve as service
    from quasar.scale.cluster import connect, disconnect
    from quasar.scale.http import Limits

    result: dict = {}
    started = connect(num_cpus=usable_cores())
    port = free_port()
    limits = Limits(max_body_bytes=16 << 20, max_files=64)
    runs = []
    try:
        for name, batch in (("batching on", 16), ("batching off", 1)):
            opts = service.ServiceOptions(max_batch_size=batch, batch_wait_ms=10, limits=limits)
            service.start(service.build_app(None, opts), "127.0.0.1", port)
            load(port, images, 4, 8, 60)  # warm-up: session, threads, proxy connections
            before = offline(offline_images)
            block = []
            for clients, n in levels.items():
                r = load(port, images, clients, n, args.level_s)
                r["mode"] = name
                block.append(r)
                print(f"{name:13s} {clients:2d} clients: {r['img_per_s']:6.2f} img/s  p50 {r['p50_ms']:7.0f} ms  "
                      f"p95 {r['p95_ms']:7.0f}  p99 {r['p99_ms']:7.0f}  failed {r['good_failed']}", flush=True)
            after = offline(offline_images)
            for r in block:
                r["offline_img_per_s"] = [before, after]
            runs += block
            print(f"offline batch around this block: {before:.2f} / {after:.2f} img/s", flush=True)
        opts = service.ServiceOptions(max_batch_size=16, batch_wait_ms=10, limits=limits)
        service.start(service.build_app(None, opts), "127.0.0.1", port)
        load(port, images, 4, 8, 60)
        bad = bad_requests(images[0], limits.max_body_bytes)
        before = offline(offline_images)
        mixed = load(port, images, 32, levels[32], args.level_s, bad=bad)
        mixed["mode"] = "mixed, 10 % bad, batching on"
        mixed["offline_img_per_s"] = [before, offline(offline_images)]
        print(f"mixed: {mixed['img_per_s']:.2f} img/s, good failed {mixed['good_failed']}, bad answered wrongly "
              f"{mixed['bad_unexpected']}; statuses {mixed['bad_statuses']}", flush=True)
        service.stop()
    finally:
        try:
            serve.shutdown()
        finally:
            disconnect(started)
    for r in [*runs, mixed]:
        r["vs_offline"] = r["img_per_s"] / float(np.mean(r["offline_img_per_s"]))
    result.update({"runs": runs, "mixed": mixed, "images": len(images),
                   "bad_kinds": [(k, want) for k, _, _, want in bad], "machine": machine_info(),
                   "date": time.strftime("%Y-%m-%d")})
    m = result["machine"]
    md = [f"# quasar serve under load ({len(images)} photos, PNG bodies, closed-loop clients on 127.0.0.1)", "",
          f"{m['cpu']}, {m['cores']} cores; {result['date']}. vs offline: img/s over the mean of the offline "
          "batch throughput measured right before and after the block (shown)", "",
          "| mode | clients | requests | img/s | offline img/s | vs offline | p50 ms | p95 ms | p99 ms | p99/p50 | failed |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in [*runs, mixed]:
        off = " / ".join(f"{x:.1f}" for x in r["offline_img_per_s"])
        md.append(f"| {r['mode']} | {r['clients']} | {r['requests']} | {r['img_per_s']:.2f} | {off} | {r['vs_offline']:.2f} | "
                  f"{r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['p99_ms']:.0f} | {r['p99_ms'] / r['p50_ms']:.2f} | "
                  f"{r['good_failed']} |")
    md += ["", "Bad requests in the mixed run (status answered; every one a JSON error):", "",
           "| request | expected | answered |", "|---|---|---|"]
    for kind, want in result["bad_kinds"]:
        md.append(f"| {kind} | {want} | {', '.join(map(str, mixed['bad_statuses'].get(kind, [])))} |")
    write_results(os.path.join(args.out, "serve_load"), result, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
