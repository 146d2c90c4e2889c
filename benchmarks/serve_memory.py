"""Is a ``quasar serve`` replica's memory flat under repeated load? RSS before, after round 1, after round 2.

    python benchmarks/serve_memory.py [--rounds 2] [--clients 32] [--requests 160] [--slow 40] [--repeats 1]

Starts a private local Ray cluster (127.0.0.1 only; nothing else is contacted) and, for each
variant in turn, the service on a free port, then runs identical load rounds against it. A round
is what ``serve_load.py``'s mixed run sends (``--clients`` closed-loop clients, ``--requests``
requests over ``--images`` distinct photos of many sizes as PNG bodies, every 10th request one of
its bad kinds: not an image, truncated, empty, wrong type, too many files, oversized, bomb) while
``--slow`` clients of ``serve_slow.py`` send bodies at a byte a second. The replica's RSS
(``/metadata`` ``stats.rss_mb``) is read after a warm-up, after each round (once the round's
clients are answered, 2 s later). "Flat": round 2 adds at most 2 % to the RSS after round 1.

Variants (the replica's ``ServiceOptions``): ``before`` = no heap trimming and glibc's default
arenas (the code before this change), ``after`` = the defaults now (``trim_heap``, ``malloc_arenas=2``),
and the two alone; alternated ``--repeats`` times on one cluster, so speed is compared side by
side (img/s and latency per round). Writes ``results/serve_memory.{json,md}``. About 3 minutes on
2 cores with the defaults (run it under ``nice``).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from quasar_bench.results import write_results  # noqa: E402
from scale_overhead import photo_paths  # noqa: E402
from serve_load import bad_requests, free_port, load  # noqa: E402
from serve_slow import get, rss, slow_client  # noqa: E402

VARIANTS = {"before": {"trim_heap": False, "malloc_arenas": None},
            "after": {"trim_heap": True, "malloc_arenas": 2},
            "trim only": {"trim_heap": True, "malloc_arenas": None},
            "arenas only": {"trim_heap": False, "malloc_arenas": 2}}
FLAT = 0.02  # round 2 may add this much to the RSS after round 1


def wait_up(port: int, limit_s: float = 180) -> None:
    deadline = time.monotonic() + limit_s
    while True:
        try:
            if get(port, "/healthz", timeout=5)[0] == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("the service did not come up")
        time.sleep(0.5)


def one_round(port: int, images: list[bytes], bad: list, args) -> dict:
    stop, lock, statuses = threading.Event(), threading.Lock(), {}
    slow = [threading.Thread(target=slow_client, args=(port, stop, statuses, lock), daemon=True)
            for _ in range(args.slow)]
    for t in slow:
        t.start()
    try:
        r = load(port, images, args.clients, args.requests, 300, bad)
    finally:
        stop.set()
        for t in slow:
            t.join(15)
    time.sleep(2)
    r["rss_mb"] = rss(port)
    r["slow_answers"] = statuses
    return r


def run_variant(name: str, port: int, images: list[bytes], bad: list, args) -> dict:
    from quasar.scale import serve as service
    from quasar.scale.http import Limits

    opts = service.ServiceOptions(max_batch_size=16, batch_wait_ms=10, limits=Limits(max_body_bytes=16 << 20),
                                  **VARIANTS[name])
    service.start(service.build_app(None, opts), "127.0.0.1", port)
    wait_up(port)
    memory = get(port, "/metadata")[1].get("memory")
    load(port, images, 4, 16, 120)  # warm-up: session, threads, proxy connections
    time.sleep(2)
    out = {"variant": name, "options": VARIANTS[name], "replica_memory": memory, "rss_warm_mb": rss(port),
           "rounds": []}
    for i in range(args.rounds):
        r = one_round(port, images, bad, args)
        out["rounds"].append(r)
        print(f"{name:12s} round {i + 1}: RSS {r['rss_mb']} MB, {r['img_per_s']:.2f} img/s, p50 {r['p50_ms']:.0f} ms, "
              f"p99 {r['p99_ms']:.0f} ms, failed {r['good_failed']}, bad unexpected {r['bad_unexpected']}", flush=True)
    rs = [out["rss_warm_mb"]] + [r["rss_mb"] for r in out["rounds"]]
    out["round2_growth"] = (rs[2] - rs[1]) / rs[1] if len(rs) > 2 and rs[1] and rs[2] else None
    out["flat"] = out["round2_growth"] is not None and out["round2_growth"] <= FLAT
    service.stop()
    return out


def markdown(result: dict) -> str:
    m = result["machine"]
    md = [f"# quasar serve: replica memory under repeated load ({result['args']['images']} photos of many sizes, "
          f"{result['args']['clients']} clients, {result['args']['requests']} requests a round, 10 % bad, "
          f"{result['args']['slow']} slow-body clients; loopback)", "",
          f"{m['cpu']}, {m['cores']} cores; {result['date']}; load average at the end {result['loadavg'][0]:.1f}. "
          f"Flat: round 2 adds at most {FLAT:.0%} to the RSS after round 1.", "",
          "| variant | trim heap | MALLOC_ARENA_MAX | RSS warm (MB) | after round 1 | after round 2 | "
          + " | ".join(f"after round {i + 1}" for i in range(2, result["args"]["rounds"]))
          + (" | " if result["args"]["rounds"] > 2 else "")
          + "round 2 adds | flat | img/s (rounds) | p50 ms (rounds) | p99 ms (rounds) | failed |",
          "|---|---|---|---|---|---|" + "---|" * max(0, result["args"]["rounds"] - 2) + "---|---|---|---|---|---|"]
    for v in result["variants"]:
        rounds = v["rounds"]
        rss_cols = " | ".join(f"{r['rss_mb']:.0f}" for r in rounds)

        def per_round(key: str, fmt: str, rounds=rounds) -> str:
            return " / ".join(format(r[key], fmt) for r in rounds)
        md.append(f"| {v['variant']} | {v['replica_memory']['trim_heap']} | {v['replica_memory']['malloc_arena_max'] or '-'} "
                  f"| {v['rss_warm_mb']:.0f} | {rss_cols} | {100 * v['round2_growth']:+.1f} % | "
                  f"{'yes' if v['flat'] else 'no'} | {per_round('img_per_s', '.1f')} | "
                  f"{per_round('p50_ms', '.0f')} | {per_round('p99_ms', '.0f')} | "
                  f"{sum(r['good_failed'] + r['bad_unexpected'] for r in rounds)} |")
    return "\n".join(md) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=160, help="requests a round (every 10th bad)")
    ap.add_argument("--slow", type=int, default=40, help="slow-body clients during each round")
    ap.add_argument("--images", type=int, default=48, help="distinct photos (PNG bodies)")
    ap.add_argument("--variants", default="before,after", help=f"comma-separated, of {', '.join(VARIANTS)}")
    ap.add_argument("--repeats", type=int, default=1, help="times each variant runs (alternated)")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--tag", default="", help="results go to serve_memory-TAG.{json,md} (a run beside the main one)")
    args = ap.parse_args(argv)
    if args.rounds < 2:
        raise SystemExit("--rounds must be at least 2")
    names = [v.strip() for v in args.variants.split(",")]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant {unknown[0]!r}; expected one of {', '.join(VARIANTS)}")
    from ray import serve

    from quasar.machine import machine_info
    from quasar.scale.cluster import connect, disconnect

    images = [open(p, "rb").read() for p in dict.fromkeys(photo_paths(args.images))]
    bad = bad_requests(images[0], 16 << 20)
    started = connect(None)
    port = free_port()
    variants = []
    try:
        for _ in range(args.repeats):
            for name in names:
                variants.append(run_variant(name, port, images, bad, args))
    finally:
        try:
            serve.shutdown()
        finally:
            disconnect(started)
    result = {"args": {**vars(args), "images": len(images)}, "flat_limit": FLAT, "variants": variants,
              "machine": machine_info(), "loadavg": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M")}
    name = "serve_memory" + (f"-{args.tag}" if args.tag else "")
    write_results(os.path.join(args.out, name), result, markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
