"""``quasar serve`` against slow-body clients: normal clients' latency with and without 200 of them.

    python benchmarks/serve_slow.py [--phase-s 30] [--slow 200] [--normal 8] [--label now]

Starts a private local Ray cluster and the service (default options) on 127.0.0.1, on a free port;
nothing else is contacted. Three phases of ``--phase-s`` seconds each:

1. ``quiet``: ``--normal`` closed-loop clients (one real photo per request, the next when answered);
2. ``attack``: the same, plus ``--slow`` clients that send their headers (``Content-Length: 10000``)
   and then one byte a second, reconnecting when answered or dropped, plus a ``/healthz`` probe
   every 0.5 s;
3. ``after``: the normal clients alone again.

Reports per phase the normal clients' requests, failures and p50/p99 latency, the ``/healthz``
probes answered and their p99, what the slow clients were answered (status counts), and the replica's
RSS (``/metadata`` ``stats.rss_mb``, when the service reports it) before and after. Bounded: at most
``--normal + --slow + 1`` client threads, every socket with a timeout. ``--label`` names the run in
``results/serve_slow.json`` (runs of other labels are kept), so code before and after a change can be
run side by side (``PYTHONPATH`` picks the code). About 2-3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import glob
import http.client
import json
import os
import select
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np
from quasar_bench.results import write_results

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str, timeout: float = 30) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"{}")
    finally:
        conn.close()


def normal_client(port: int, image: bytes, stop: threading.Event, out: list) -> None:
    conn = None
    while not stop.is_set():
        t = time.perf_counter()
        try:
            conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("POST", "/score", body=image, headers={"Content-Type": "image/png"})
            r = conn.getresponse()
            ok = r.status == 200 and "scores" in json.loads(r.read())
            why = None if ok else str(r.status)
            if not ok or r.will_close:
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException, ValueError) as e:
            ok, why = False, type(e).__name__
            if conn is not None:
                conn.close()
            conn = None
        out.append((time.perf_counter() - t, ok, why))
    if conn is not None:
        conn.close()


def slow_client(port: int, stop: threading.Event, statuses: dict, lock: threading.Lock) -> None:
    head = (b"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
            b"Content-Length: 10000\r\n\r\n")
    while not stop.is_set():
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            time.sleep(1)
            continue
        status = "dropped"
        try:
            s.sendall(head)
            while not stop.is_set():
                ready, _, _ = select.select([s], [], [], 1.0)
                if ready:
                    data = s.recv(4096)
                    status = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/") else "dropped"
                    break
                s.sendall(b"\0")  # one byte a second
            else:
                status = "held to the end"
        except OSError:
            pass
        finally:
            s.close()
        with lock:
            statuses[status] = statuses.get(status, 0) + 1


def health_probe(port: int, stop: threading.Event, out: list) -> None:
    while not stop.is_set():
        t = time.perf_counter()
        try:
            ok = get(port, "/healthz", timeout=10)[0] == 200
        except (OSError, http.client.HTTPException, ValueError):
            ok = False
        out.append((time.perf_counter() - t, ok))
        stop.wait(0.5)


def phase(port: int, image: bytes, seconds: float, normal: int, slow: int) -> dict:
    stop, lock = threading.Event(), threading.Lock()
    lat: list = []
    health: list = []
    statuses: dict = {}
    threads = [threading.Thread(target=normal_client, args=(port, image, stop, lat)) for _ in range(normal)]
    threads += [threading.Thread(target=slow_client, args=(port, stop, statuses, lock), daemon=True)
                for _ in range(slow)]
    threads.append(threading.Thread(target=health_probe, args=(port, stop, health)))
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(90)
    ms = np.array([x for x, ok, _ in lat if ok]) * 1000
    failures: dict = {}
    for _, ok, why in lat:
        if not ok:
            failures[why] = failures.get(why, 0) + 1
    hms = np.array([x for x, ok in health if ok]) * 1000
    def pct(a, q):
        return (float(np.percentile(a, q)) if len(a) else None)
    return {"seconds": seconds, "normal_clients": normal, "slow_clients": slow,
            "requests": len(lat), "failed": sum(not ok for _, ok, _ in lat), "failures": failures,
            "p50_ms": pct(ms, 50), "p99_ms": pct(ms, 99), "max_ms": float(ms.max()) if len(ms) else None,
            "healthz": len(health), "healthz_failed": sum(not ok for _, ok in health), "healthz_p99_ms": pct(hms, 99),
            "slow_answers": statuses}


def rss(port: int) -> float | None:
    try:
        return get(port, "/metadata")[1].get("stats", {}).get("rss_mb")
    except (OSError, http.client.HTTPException, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--phase-s", type=float, default=30.0)
    ap.add_argument("--slow", type=int, default=200)
    ap.add_argument("--normal", type=int, default=8)
    ap.add_argument("--label", default="now", help="name of this run in the results file")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    from ray import serve

    from quasar.machine import machine_info
    from quasar.scale import serve as service
    from quasar.scale.cluster import connect, disconnect

    photos = sorted(glob.glob(os.path.expanduser("~/.cache/quasar/photos/**/*.png"), recursive=True))
    if not photos:
        raise SystemExit("no photos under ~/.cache/quasar/photos: run `python -m quasar.photos` first")
    image = open(photos[0], "rb").read()
    started = connect(None)
    port = free_port()
    try:
        service.start(service.build_app(None, service.ServiceOptions()), "127.0.0.1", port)
        deadline = time.monotonic() + 180
        while True:
            try:
                if get(port, "/healthz", timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the service did not come up within 180 s")
            time.sleep(0.5)
        phase(port, image, 5, args.normal, 0)  # warm-up
        rss_before = rss(port)
        run = {"label": args.label, "quiet": phase(port, image, args.phase_s, args.normal, 0)}
        print("quiet", run["quiet"], flush=True)
        run["attack"] = phase(port, image, args.phase_s, args.normal, args.slow)
        print("attack", run["attack"], flush=True)
        run["after"] = phase(port, image, args.phase_s, args.normal, 0)
        print("after", run["after"], flush=True)
        run["replica_rss_mb"] = [rss_before, rss(port)]
    finally:
        try:
            serve.shutdown()
        finally:
            disconnect(started)
    q, a = run["quiet"]["p99_ms"], run["attack"]["p99_ms"]
    run["attack_p99_over_quiet_p99"] = a / q if a and q else None
    run.update(machine=machine_info(), loadavg=os.getloadavg(), date=time.strftime("%Y-%m-%d %H:%M"))
    path = os.path.join(args.out, "serve_slow.json")
    runs = {}
    if os.path.exists(path):
        runs = {r["label"]: r for r in json.load(open(path))["runs"]}
    runs[args.label] = run
    md = ["# quasar serve with slow-body clients (loopback, default options)", "",
          "| run | phase | slow clients | normal requests | failed | p50 ms | p99 ms | /healthz answered | "
          "/healthz p99 ms | slow clients answered | replica RSS MB (before, after) |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]
    def fmt(v):
        return ("-" if v is None else f"{v:.0f}")
    for r in runs.values():
        for name in ("quiet", "attack", "after"):
            p = r[name]
            md.append(f"| {r['label']} | {name} | {p['slow_clients']} | {p['requests']} | {p['failed']} | "
                      f"{fmt(p['p50_ms'])} | {fmt(p['p99_ms'])} | {p['healthz'] - p['healthz_failed']}/{p['healthz']} | "
                      f"{fmt(p['healthz_p99_ms'])} | {p['slow_answers'] or '-'} | "
                      f"{', '.join(fmt(x) for x in r['replica_rss_mb'])} |")
    m = run["machine"]
    md += ["", f"Machine: {m['cpu']}, {m['cores']} cores, ISA {' '.join(m['isa'])}; load average at the end "
               f"{run['loadavg'][0]:.1f}. p99 under attack / quiet p99 ({args.label}): "
               f"{fmt(run['attack_p99_over_quiet_p99'] and 100 * run['attack_p99_over_quiet_p99'])} %."]
    write_results(os.path.join(args.out, "serve_slow"), {"runs": list(runs.values())}, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
