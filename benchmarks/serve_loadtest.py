"""Load test of ``quasar serve`` with real load generators: Locust (headless) and ``wrk``.

    python benchmarks/serve_loadtest.py [--quick] [--levels 1,8,32,128] [--replicas 1,2] [--level-s 20]

For each replica count it starts ``quasar serve --replicas N`` as a user does (a subprocess on a free
port of 127.0.0.1; nothing else is contacted), warms it up, then for each level of concurrent clients
runs Locust (``benchmarks/locustfile.py``: closed-loop users posting JPEGs round robin) and then ``wrk``
(``benchmarks/serve_loadtest.lua``: closed-loop connections posting one JPEG), each for ``--level-s``
seconds at most. Every image is one of ``--images`` real photos (``python -m quasar.photos``) saved as
1280x854 JPEGs, so every request costs the same. Recorded per run: img/s, p50/p99 latency, error rate,
and the ratio to the offline throughput (one in-process ``Scorer.score`` over the same JPEGs, measured
right before and right after each replica count's block, the service idle); per replica count, the
resident memory of every replica process before the first level and after the last.

On this machine the load generators share the cores with the service: Locust (one Python process) costs
CPU the service then lacks, so its img/s is a lower bound, and ``wrk`` (C, two threads) costs little.
Locust rounds its latency percentiles to two significant digits. Writes
``results/serve_loadtest.{json,md}`` and ``results/serve_loadtest.png``; ``--quick`` (one replica, one
level of 8 clients, 5 s per tool) is the smoke test (tests/test_serve_loadtest.py) and writes
``serve_loadtest-quick.*``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from quasar_bench.results import write_results  # noqa: E402

from quasar.machine import machine_info  # noqa: E402

LOCUSTFILE = HERE / "locustfile.py"
WRK_SCRIPT = HERE / "serve_loadtest.lua"
SIZE = (1280, 854)
REPLICA_TITLE = "ServeReplica:"  # Ray's process title of a Serve replica ("ray::ServeReplica:<app>:<deployment>")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_images(n: int, folder: Path) -> list[str]:
    """``n`` real photos as 1280x854 JPEGs (quality 90) in ``folder``."""
    import cv2

    from quasar.photos import fetch_photos

    photos = sorted(fetch_photos(), key=lambda p: p.path)[:n]
    if len(photos) < n:
        raise SystemExit(f"only {len(photos)} photos: run `python -m quasar.photos` first")
    paths = []
    for i, p in enumerate(photos):
        out = folder / f"load-{i:03d}.jpg"
        cv2.imwrite(str(out), cv2.resize(cv2.imread(p.path), SIZE, interpolation=cv2.INTER_AREA),
                    [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(str(out))
    return paths


def get_json(url: str, timeout: float = 10) -> tuple[int, dict]:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, json.loads(r.read())


class Service:
    """``quasar serve --replicas N`` as a subprocess; ``stop`` sends SIGTERM (graceful) and waits."""

    def __init__(self, replicas: int, address: str | None, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "quasar.cli", "serve", "--port", str(self.port), "--replicas", str(replicas)]
        if address:
            cmd += ["--address", address]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        self.log = open(log, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        self.replicas = replicas
        self.root = None if address else self.proc.pid  # its private cluster's processes are its children

    def memory(self) -> list[dict]:
        return replica_memory(self.root)

    def wait_ready(self, limit_s: float = 240) -> None:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"quasar serve exited with {self.proc.returncode}: see {self.log.name}")
            try:
                if get_json(self.url + "/healthz", 5)[0] == 200 and len(self.memory()) >= self.replicas:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"quasar serve did not answer /healthz within {limit_s:g} s: see {self.log.name}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def replica_memory(root: int | None) -> list[dict]:
    """The Serve replica processes under ``root`` (the service's own private Ray cluster), or on the whole
    machine when None (a joined cluster): pid and resident memory (MB) of each."""
    import psutil

    procs = psutil.Process(root).children(recursive=True) if root else list(psutil.process_iter())
    out = []
    for p in procs:
        try:
            title = " ".join(p.cmdline()) or p.name()
            if REPLICA_TITLE in title:
                out.append({"pid": p.pid, "rss_mb": round(p.memory_info().rss / 2**20, 1)})
        except psutil.Error:  # gone, or not ours to read
            continue
    return sorted(out, key=lambda r: r["pid"])


def offline(paths: list[str]) -> float:
    """img/s of one in-process Scorer over the JPEGs (twice the set; after a warm-up call)."""
    from quasar.runtime import Scorer

    data = [open(p, "rb").read() for p in paths]
    with Scorer() as s:
        s.score(data[:2])
        t = time.perf_counter()
        recs = s.score(data * 2)
        seconds = time.perf_counter() - t
    if not all(r.ok for r in recs):
        raise SystemExit("offline scoring failed on a load-test image")
    return len(recs) / seconds


def warm_up(url: str, paths: list[str], replicas: int) -> None:
    """A few concurrent requests, so every replica has its session and threads before a level is timed."""
    from concurrent.futures import ThreadPoolExecutor

    def one(p: str) -> int:
        req = urllib.request.Request(url + "/score", data=open(p, "rb").read(), method="POST",
                                     headers={"Content-Type": "image/jpeg"})
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status

    with ThreadPoolExecutor(4 * replicas) as pool:
        list(pool.map(one, (paths * (8 * replicas // len(paths) + 1))[: 8 * replicas]))


def run_locust(url: str, paths: list[str], clients: int, seconds: float, work: Path) -> dict:
    prefix = work / f"locust-{clients}"
    env = {**os.environ, "QUASAR_LOADTEST_IMAGES": os.pathsep.join(paths)}
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", str(clients), "-r",
           str(clients), "--run-time", f"{seconds:g}s", "--stop-timeout", "0", "--host", url, "--csv", str(prefix),
           "--only-summary", "--loglevel", "ERROR", "--exit-code-on-error", "0"]
    t = time.monotonic()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 120)
    wall = time.monotonic() - t
    if r.returncode != 0:
        raise SystemExit(f"locust failed ({r.returncode}): {r.stderr.strip()[-500:]}")
    with open(f"{prefix}_stats.csv", newline="") as f:
        row = next(x for x in csv.DictReader(f) if x["Name"] == "Aggregated")
    n, failed = int(row["Request Count"]), int(row["Failure Count"])
    return {"tool": "locust", "clients": clients, "seconds": seconds, "wall_s": round(wall, 1), "requests": n,
            "failed": failed, "error_rate": failed / n if n else None, "img_per_s": (n - failed) / seconds,
            "p50_ms": float(row["50%"]) if n else None, "p99_ms": float(row["99%"]) if n else None}


def run_wrk(url: str, image: str, clients: int, seconds: float) -> dict:
    threads = min(clients, 2)
    cmd = ["wrk", "-t", str(threads), "-c", str(clients), "-d", f"{seconds:g}s", "--timeout", "120s",
           "-s", str(WRK_SCRIPT), url + "/score"]
    env = {**os.environ, "QUASAR_WRK_IMAGE": image}
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 180)
    line = next((x for x in r.stdout.splitlines() if x.startswith("QUASAR_WRK ")), None)
    if r.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed ({r.returncode}): {(r.stderr or r.stdout).strip()[-500:]}")
    d = json.loads(line.split(" ", 1)[1])
    errors = d["connect_errors"] + d["read_errors"] + d["write_errors"] + d["status_errors"] + d["timeouts"]
    n = d["requests"]
    good = max(n - d["status_errors"], 0)
    return {"tool": "wrk", "clients": clients, "seconds": seconds, "wall_s": round(d["duration_us"] / 1e6, 1),
            "requests": n, "failed": errors, "error_rate": errors / max(n, 1),
            "img_per_s": good / (d["duration_us"] / 1e6), "p50_ms": d["p50_us"] / 1000 if n else None,
            "p99_ms": d["p99_us"] / 1000 if n else None, "wrk": d}


def run_block(replicas: int, args, paths: list[str], work: Path) -> dict:
    """One replica count: start the service, offline before, every level with both tools, offline after."""
    service = Service(replicas, args.address, work / f"serve-{replicas}.log")
    try:
        service.wait_ready()
        warm_up(service.url, paths, replicas)
        before = offline(paths)
        memory_before = service.memory()
        runs = []
        for clients in args.levels:
            for tool in args.tools:
                r = (run_locust(service.url, paths, clients, args.level_s, work) if tool == "locust"
                     else run_wrk(service.url, paths[0], clients, args.level_s))
                r["replicas"] = replicas
                runs.append(r)
                print(f"{replicas} replica(s) {tool:6s} {clients:3d} clients: {r['img_per_s']:6.2f} img/s  "
                      f"p50 {r['p50_ms'] or 0:7.0f} ms  p99 {r['p99_ms'] or 0:7.0f} ms  "
                      f"errors {r['failed']}/{r['requests']}", flush=True)
        memory_after = service.memory()
        after = offline(paths)
    finally:
        service.stop()
    for r in runs:
        r["offline_img_per_s"] = [before, after]
        r["vs_offline"] = r["img_per_s"] / ((before + after) / 2)
    return {"replicas": replicas, "runs": runs, "offline_img_per_s": [before, after],
            "memory_before": memory_before, "memory_after": memory_after}


def plot(blocks: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for b in blocks:
        for tool in sorted({r["tool"] for r in b["runs"]}):
            runs = [r for r in b["runs"] if r["tool"] == tool]
            x = [r["clients"] for r in runs]
            label = f"{tool}, {b['replicas']} replica{'s' if b['replicas'] > 1 else ''}"
            ax1.plot(x, [r["img_per_s"] for r in runs], marker="o", label=label)
            ax2.plot(x, [r["p50_ms"] for r in runs], marker="o", label=f"p50 {label}")
            ax2.plot(x, [r["p99_ms"] for r in runs], marker="x", linestyle="--", label=f"p99 {label}")
        ax1.axhline(sum(b["offline_img_per_s"]) / 2, color="grey", linestyle=":",
                    label=f"offline ({b['replicas']} replica block)")
    for ax, title in ((ax1, "throughput (img/s)"), (ax2, "latency (ms)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent clients")
        ax.set_title(title)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    ax1.set_ylim(bottom=0)
    ax2.set_yscale("log")
    levels = sorted({r["clients"] for b in blocks for r in b["runs"]})
    for ax in (ax1, ax2):
        ax.set_xticks(levels, [str(x) for x in levels])
        ax.minorticks_off()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def targets(blocks: list[dict], clients: int = 32) -> list[dict]:
    """Issue 26's targets per tool at ``clients``: vs offline >= 0.9 and p99 <= 2 x p50 (each replica count),
    and 2 replicas at least as fast as 1."""
    at = {(b["replicas"], r["tool"]): r for b in blocks for r in b["runs"] if r["clients"] == clients}
    out = []
    for (replicas, tool), r in sorted(at.items()):
        p99_p50 = r["p99_ms"] / r["p50_ms"] if r["p50_ms"] else None
        one = at.get((1, tool))
        row = {"tool": tool, "replicas": replicas, "clients": clients, "vs_offline": r["vs_offline"],
               "vs_offline_ok": r["vs_offline"] >= 0.9, "p99_over_p50": p99_p50,
               "p99_ok": p99_p50 is not None and p99_p50 <= 2.0}
        if replicas > 1 and one is not None:
            row["vs_one_replica"] = r["img_per_s"] / one["img_per_s"]
            row["not_slower_ok"] = r["img_per_s"] >= one["img_per_s"]
        out.append(row)
    return out


def markdown(result: dict) -> list[str]:
    m = result["machine"]
    md = [f"# quasar serve under Locust and wrk ({result['images']} photos as {SIZE[0]}x{SIZE[1]} JPEG, 127.0.0.1)",
          "", f"{m['cpu']}, {m['cores']} cores; {result['date']}; {result['level_s']:g} s per tool and level"
          f"{' (--quick)' if result['quick'] else ''}. vs offline: img/s over the mean offline throughput "
          "measured before and after each replica count's block. The load generators run on the same cores.", "",
          "| replicas | tool | clients | requests | img/s | offline img/s | vs offline | p50 ms | p99 ms | p99/p50 "
          "| error rate |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for b in result["blocks"]:
        for r in b["runs"]:
            off = " / ".join(f"{x:.1f}" for x in r["offline_img_per_s"])
            ratio = f"{r['p99_ms'] / r['p50_ms']:.2f}" if r["p50_ms"] else "-"
            md.append(f"| {b['replicas']} | {r['tool']} | {r['clients']} | {r['requests']} | {r['img_per_s']:.2f} | "
                      f"{off} | {r['vs_offline']:.2f} | {r['p50_ms'] or 0:.0f} | {r['p99_ms'] or 0:.0f} | {ratio} | "
                      f"{(r['error_rate'] or 0) * 100:.1f} % |")
    md += ["", "Replica memory (resident MB, every replica process):", "", "| replicas | before | after |",
           "|---|---|---|"]
    for b in result["blocks"]:
        fmt = lambda mem: ", ".join(f"{x['rss_mb']:.0f}" for x in mem) or "-"  # noqa: E731
        md.append(f"| {b['replicas']} | {fmt(b['memory_before'])} | {fmt(b['memory_after'])} |")
    if result["targets"]:
        md += ["", "Targets at 32 clients (issue 26): vs offline >= 0.9, p99 <= 2 x p50, 2 replicas not slower than 1:",
               "", "| tool | replicas | vs offline | p99/p50 | vs 1 replica |", "|---|---|---|---|---|"]
        for t in result["targets"]:
            vs1 = f"{t['vs_one_replica']:.2f}" if "vs_one_replica" in t else "-"
            md.append(f"| {t['tool']} | {t['replicas']} | {t['vs_offline']:.2f} | {t['p99_over_p50'] or 0:.2f} | {vs1} |")
    md += ["", f"Plot: {result['plot']}"]
    return md


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--levels", default="1,8,32,128", help="concurrent clients per level, comma-separated")
    ap.add_argument("--replicas", default="1,2", help="replica counts, comma-separated")
    ap.add_argument("--level-s", type=float, default=20.0, help="seconds each tool runs at each level")
    ap.add_argument("--images", type=int, default=16, help="distinct photos sent")
    ap.add_argument("--tools", default="locust,wrk", help="load generators: locust, wrk or both")
    ap.add_argument("--address", default=None, help="join this Ray cluster (default: each service starts its own)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 replica, 8 clients, 5 s per tool, 4 photos")
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args(argv)
    if args.quick:
        args.levels, args.replicas, args.level_s, args.images = "8", "1", 5.0, 4
    args.levels = [int(x) for x in args.levels.split(",")]
    args.replicas = [int(x) for x in args.replicas.split(",")]
    args.tools = [t for t in args.tools.split(",") if t]
    if not set(args.tools) <= {"locust", "wrk"} or not args.tools:
        ap.error("--tools: locust and/or wrk")
    if "wrk" in args.tools and shutil.which("wrk") is None:
        ap.error("wrk is not installed (Debian: apt-get install wrk), or pass --tools locust")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    name = "serve_loadtest-quick" if args.quick else "serve_loadtest"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="quasar-loadtest-") as tmp:
        work = Path(tmp)
        paths = make_images(args.images, work)
        blocks = [run_block(n, args, paths, work) for n in args.replicas]
    png = out / f"{name}.png"
    plot(blocks, png)
    result = {"blocks": blocks, "images": len(paths), "size": list(SIZE), "levels": args.levels,
              "level_s": args.level_s, "tools": args.tools, "quick": args.quick, "plot": png.name,
              "targets": targets(blocks),
              "machine": machine_info(), "date": time.strftime("%Y-%m-%d")}
    write_results(out / name, result, markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
