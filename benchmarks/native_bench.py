"""Native library vs the Python runtime, side by side in one run: same files, same static model.

    python benchmarks/native_bench.py [--build build/native] [--n 24] [--reps 3] [--quick]

Configurations (each in its own process, interleaved over the repetitions, so machine load hits both):

* **latency, batch 1 (camera case)**: one image at a time, file -> scores. Python: ``Scorer(model,
  batch_size=1)`` and one ``score(path)`` call per image (ONNX Runtime); native: one
  ``quasar_score_file`` call per image (``build/native/quasar-bench``, OpenCV DNN). Two warm-up
  calls are not timed. p50/p95 per image; throughput = images / wall time of the timed loop.
* **CLI throughput**: ``python -m quasar score FILES -o out.csv`` vs ``quasar-score FILES -o out.csv``
  with their defaults (decode threads = cores; the static graph's batch of 1), whole process
  including start-up and model loading; peak RSS of the process (``ru_maxrss``).
* **sizes**: the native library and CLI (as built and stripped), the OpenCV libraries they link, the
  Python runtime's installed dependencies, and the model file.

Images: the benchmark sets of ``quasar_bench.camera`` (12 MP / 5 MP camera JPEGs and 1 MP JPEGs,
generated once from the project's photos under ``~/.cache/quasar/bench/images``). Model: the default
pack exported by ``python -m quasar export onnx --static 384x512`` (cached next to the images).
Results: ``benchmarks/results/native.{json,md}``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from quasar_bench import camera  # noqa: E402
from quasar_bench.results import write_results  # noqa: E402
from quasar_bench.stats import percentiles, spread  # noqa: E402

from quasar.eval.metrics import srcc  # noqa: E402  (ties get average ranks, as scipy's spearmanr)
from quasar.machine import machine_info  # noqa: E402

ENV = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def python_latency_worker(model: str, files: list[str], warmup: int) -> None:
    """The Python side of the latency loop (run in a child process); prints one JSON object."""
    t = time.perf_counter()
    from quasar.runtime import Scorer

    scorer = Scorer(model, batch_size=1)
    load_s = time.perf_counter() - t
    for f in files[:warmup]:
        scorer.score(f)
    lat, quality = [], []
    t0 = time.perf_counter()
    for f in files:
        a = time.perf_counter()
        (rec,) = scorer.score(f)
        lat.append((time.perf_counter() - a) * 1000)
        quality.append(rec.scores["quality"])
    wall = time.perf_counter() - t0
    hwm = next(float(line.split()[1]) / 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    print(json.dumps({"load_s": load_s, "wall_s": wall, "vmhwm_mb": hwm, "latencies_ms": lat, "quality": quality,
                      "backend": scorer.backend.name}))


def python_model_only_worker(model: str, path: str, n: int, threads: int) -> None:
    """ONNX Runtime alone on the tensor the Python runtime prepares from ``path`` (child process)."""
    import onnxruntime as ort

    from quasar.runtime.model import load_model_info
    from quasar.runtime.prepare import Preparer
    from quasar.runtime.sources import Item

    x = Preparer(load_model_info(model).spec)(Item(path, path=path))[None]
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    session = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    for _ in range(2):
        session.run(None, {"images": x})
    lat = []
    for _ in range(n):
        a = time.perf_counter()
        session.run(None, {"images": x})
        lat.append((time.perf_counter() - a) * 1000)
    print(json.dumps({"latencies_ms": lat}))


def model_only(model: str, image: str, bench: Path, reps: int, runs: int = 20) -> dict:
    """Inference alone on one prepared image, 1 and 2 threads: ONNX Runtime vs OpenCV DNN, interleaved."""
    lat: dict[str, list[float]] = {}
    for rep in range(reps):
        for threads in (1, 2):
            for kind in ("ort", "opencv") if rep % 2 == 0 else ("opencv", "ort"):
                cmd = ([sys.executable, __file__, "--worker-model-only", model, image, str(runs), str(threads)]
                       if kind == "ort" else
                       [str(bench), model, "--threads", str(threads), "--model-only", str(runs), image])
                out = subprocess.run(cmd, capture_output=True, text=True, env=ENV, check=True).stdout
                lat.setdefault(f"{kind}_{threads}t", []).extend(json.loads(out.strip().splitlines()[-1])["latencies_ms"])
    return {k: percentiles(v, (50, 95)) for k, v in lat.items()}


def child_rss(cmd: list[str]) -> tuple[str, float, float]:
    """("", wall seconds, peak RSS MiB) of running ``cmd``; the peak RSS is the child's own (wait4)."""
    t = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            os.execvpe(cmd[0], cmd, ENV)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd[:3])}... exited {os.waitstatus_to_exitcode(status)}")
    return "", wall, usage.ru_maxrss / 1024


def file_mb(path: str | Path) -> float:
    return os.path.getsize(path) / 1e6


def stripped_mb(path: str | Path) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        dst = os.path.join(tmp, "x")
        shutil.copy(path, dst)
        subprocess.run(["strip", "--strip-unneeded", dst], check=True)
        return file_mb(dst)


def linked_libs(path: str | Path, pattern: str) -> dict[str, float]:
    out = subprocess.run(["ldd", str(path)], capture_output=True, text=True).stdout
    libs = {}
    for line in out.splitlines():
        parts = line.split("=>")
        if len(parts) == 2 and pattern in parts[0]:
            target = parts[1].split("(")[0].strip()
            libs[os.path.basename(parts[0].strip())] = file_mb(os.path.realpath(target))
    return libs


def site_packages_mb(dists: list[str]) -> dict[str, float]:
    from importlib import metadata

    out = {}
    for d in dists:
        try:
            dist = metadata.distribution(d)
        except metadata.PackageNotFoundError:
            continue
        total = 0
        for f in dist.files or []:
            p = dist.locate_file(f)
            if os.path.isfile(p):
                total += os.path.getsize(p)
        out[d] = total / 1e6
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=str(ROOT / "build" / "native"), help="the CMake build folder")
    ap.add_argument("--model", help="static model (default: exported once into the cache)")
    ap.add_argument("--clip-form", choices=("clip", "relu"), default="clip",
                    help="how the exported model writes ReLU6 (default: clip, which ONNX Runtime fuses; the native "
                         "library rewrites either form for OpenCV)")
    ap.add_argument("--n", type=int, default=24, help="images per set")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="8 images, 1 repetition (a smoke run)")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--worker-python", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--worker-model-only", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker_python:
        python_latency_worker(args.worker_python[0], args.worker_python[1:], warmup=2)
        return 0
    if args.worker_model_only:
        m, path, n, threads = args.worker_model_only
        python_model_only_worker(m, path, int(n), int(threads))
        return 0
    if args.quick:
        args.n, args.reps = 8, 1
    build = Path(args.build)
    tools = {"bench": build / "quasar-bench", "cli": build / "quasar-score", "lib": build / "libquasar.so"}
    for p in tools.values():
        if not p.exists():
            raise SystemExit(f"{p}: not built; run cmake -S . -B {build} && cmake --build {build} first")
    from quasar.paths import cache_dir

    cache = cache_dir() / "bench"
    model = args.model
    if model is None:
        model = str(cache / "native" / f"default-static-384x512-{args.clip_form}.onnx")
        if not os.path.exists(model):
            os.makedirs(os.path.dirname(model), exist_ok=True)
            subprocess.run([sys.executable, "-m", "quasar", "export", "onnx", "--pack", "default", "--static", "384x512",
                            "--clip-form", args.clip_form, "-o", model], check=True, env=ENV)
    sets = {s: camera.generate(s, cache / "images", args.n) for s in ("camera", "1mp")}
    load = os.getloadavg()[0]
    results: dict = {"created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "machine": machine_info(),
                     "model": {"path": model, "mb": file_mb(model), "clip_form": None if args.model else args.clip_form},
                     "reps": args.reps, "n": args.n, "sets": {},
                     "load_start": load}
    ver = subprocess.run([str(tools["cli"]), "--version"], capture_output=True, text=True).stdout.strip()
    results["native_version"] = ver
    print(f"{ver}; model {model}; load {load:.2f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for set_name, files in sets.items():
            rows: dict[str, dict] = {k: {"wall": [], "lat": [], "rss": [], "quality": None} for k in
                                     ("python_b1", "native_b1", "python_cli", "native_cli")}
            for rep in range(args.reps):
                for kind in ("python_b1", "native_b1", "python_cli", "native_cli") if rep % 2 == 0 else \
                        ("native_b1", "python_b1", "native_cli", "python_cli"):
                    r = rows[kind]
                    if kind.endswith("_b1"):
                        cmd = ([sys.executable, __file__, "--worker-python", model, *files] if kind == "python_b1"
                               else [str(tools["bench"]), model, *files])
                        out = subprocess.run(cmd, capture_output=True, text=True, env=ENV, check=True).stdout
                        d = json.loads(out.strip().splitlines()[-1])
                        r["wall"].append(d["wall_s"])
                        r["lat"].extend(d["latencies_ms"])
                        r["rss"].append(d["vmhwm_mb"])
                        r["quality"] = d["quality"]
                    else:
                        csv_out = os.path.join(tmp, f"{kind}.csv")
                        cmd = ([sys.executable, "-m", "quasar", "score"] if kind == "python_cli" else [str(tools["cli"])])
                        cmd = cmd + [*files, "--model", model, "-o", csv_out, "-q"]
                        _, wall, rss = child_rss(cmd)
                        r["wall"].append(wall)
                        r["rss"].append(rss)
                        with open(csv_out, newline="") as f:
                            r["quality"] = [float(row["quality"]) for row in csv.DictReader(f)]
                    print(f"  {set_name} rep {rep + 1} {kind}: {len(files) / r['wall'][-1]:.2f} img/s", flush=True)
            summary = {}
            for kind, r in rows.items():
                summary[kind] = {"images_per_s": spread([len(files) / w for w in r["wall"]]),
                                 "peak_rss_mb": spread(r["rss"])}
                if r["lat"]:
                    summary[kind]["latency_ms"] = percentiles(r["lat"], (50, 95))
            q = {k: np.array(r["quality"]) for k, r in rows.items()}
            summary["agreement"] = {"srcc_native_vs_python": srcc(q["native_b1"], q["python_b1"]),
                                    "max_abs_diff": float(np.abs(q["native_b1"] - q["python_b1"]).max())}
            results["sets"][set_name] = {"files": camera.describe(files), "rows": summary}
        results["model_only_ms"] = model_only(model, sets["camera"][0], tools["bench"], args.reps)
        print(f"  model only: {results['model_only_ms']}", flush=True)
    results["load_end"] = os.getloadavg()[0]
    cv_libs = linked_libs(tools["lib"], "opencv")
    results["sizes_mb"] = {
        "libquasar.so": file_mb(tools["lib"]), "libquasar.so stripped": stripped_mb(tools["lib"]),
        "quasar-score": file_mb(tools["cli"]), "quasar-score stripped": stripped_mb(tools["cli"]),
        "OpenCV libraries linked (Debian)": sum(cv_libs.values()), "opencv_libs": cv_libs,
        "Python runtime deps (onnxruntime, opencv-python-headless, numpy, pillow)": sum(site_packages_mb(
            ["onnxruntime", "opencv-python-headless", "numpy", "pillow"]).values()),
        "model (static 384x512 fp32 ONNX)": file_mb(model),
    }
    write_results(os.path.join(args.out, "native"), results, report(results))
    return 0


LABELS = {"python_b1": "Python `Scorer(batch_size=1)`, ORT, one `score(path)` per image",
          "native_b1": "native `quasar_score_file`, OpenCV DNN, one call per image",
          "python_cli": "`python -m quasar score` (ORT), whole process",
          "native_cli": "`quasar-score` (OpenCV DNN), whole process"}


def report(r: dict) -> str:
    m = r["machine"]
    lines = [
        "# Native library vs Python runtime (same files, same static model, one run)", "",
        f"Machine: {m['cpu']}, {m['cores']} cores, ISA {', '.join(m['isa'])}; {m['memory_gib']} GiB; {m['os']}. "
        f"Python {m['python']}, onnxruntime {m['versions'].get('onnxruntime')}, opencv-python {m['versions'].get('opencv')}, "
        f"pillow {m['versions'].get('pillow')}; {r['native_version']}.", "",
        f"Created {r['created']}; {r['reps']} repetitions, configurations interleaved; model "
        f"{os.path.basename(r['model']['path'])} ({r['model']['mb']:.1f} MB, default pack, static 1x384x512x3, fit stretch, "
        f"ReLU6 written as {r['model'].get('clip_form') or 'in the given file'}). "
        f"1-minute load average {r['load_start']:.1f} at the start, {r['load_end']:.1f} at the end (2 cores: above 2 the "
        "machine was shared and timings are noisy).", ""]
    for name, s in r["sets"].items():
        f = s["files"]
        sizes = ", ".join(f"{k} ×{v}" for k, v in f["sizes"].items())
        lines += [f"## Set `{name}`: {f['n']} JPEGs ({sizes}; mean {f['mean_file_mb']} MB)", "",
                  "| configuration | images/s median (min–max) | latency p50 / p95 ms | peak RSS MiB |", "|---|---|---|---|"]
        for kind, label in LABELS.items():
            row = s["rows"][kind]
            ips, rss = row["images_per_s"], row["peak_rss_mb"]
            lat = row.get("latency_ms")
            lat_s = f"{lat['p50']:.1f} / {lat['p95']:.1f}" if lat else "–"
            lines.append(f"| {label} | **{ips['median']:.2f}** ({ips['min']:.2f}–{ips['max']:.2f}) | {lat_s} | "
                         f"{rss['median']:.0f} |")
        a = s["rows"]["agreement"]
        py, nat = s["rows"]["python_b1"], s["rows"]["native_b1"]
        lines += ["", f"Batch 1: native p50 {nat['latency_ms']['p50']:.1f} ms vs Python {py['latency_ms']['p50']:.1f} ms "
                  f"({py['latency_ms']['p50'] / nat['latency_ms']['p50']:.2f}× the Python speed); `quality` SRCC native "
                  f"vs Python {a['srcc_native_vs_python']:.4f}, max |Δ| {a['max_abs_diff']:.1e}.", ""]
    mo = r.get("model_only_ms")
    if mo:
        lines += ["## Inference alone (one prepared 384x512 image, 20 runs per repetition)", "",
                  "| engine | 1 thread p50 / p95 ms | 2 threads p50 / p95 ms |", "|---|---|---|"]
        for kind, label in (("ort", "ONNX Runtime (Python)"), ("opencv", "OpenCV DNN (native, ReLU6 as OpenCV's Clip)")):
            cells = [f"{mo[f'{kind}_{t}t']['p50']:.1f} / {mo[f'{kind}_{t}t']['p95']:.1f}" for t in (1, 2)]
            lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
        lines.append("")
    sz = r["sizes_mb"]
    lines += ["## Sizes (MB)", "", "| what | MB |", "|---|---|"]
    for k, v in sz.items():
        if isinstance(v, (int, float)):
            lines.append(f"| {k} | {v:.2f} |")
    lines += ["", "OpenCV libraries: " + ", ".join(f"{k} {v:.1f}" for k, v in sz["opencv_libs"].items()) + ".", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
