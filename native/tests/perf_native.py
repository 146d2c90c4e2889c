"""The native library from Python (quasar.nativelib, ctypes) and `quasar perf --backend native`, against
the built library:

1. the binding scores the test photo (quasar_score_buffer, and quasar_prepare_buffer + quasar_score_images
   in a batch) like the Python runtime on the same static model (within --max-diff, parity.py's), and a
   bad input is a one-line error naming it;
2. `python3 -m quasar perf --backend native` over every scenario, both modes, writes a report whose
   fields say that the native library ran (its backend, the model's metadata, LoadGen's verdicts, no
   failed sample), and leaves out the image this OpenCV cannot decode (a GIF) for every target;
3. a dynamic model (the shipped default) is refused in one line naming the file, before any measurement.

    python3 native/tests/perf_native.py --lib build/native/libquasar.so --model M-384x512.onnx \\
        --small-model M-64x64.onnx --images DIR --photo PHOTO
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, ROOT)

from quasar.errors import QuasarError  # noqa: E402
from quasar.nativelib import NativeScorer, Status, load  # noqa: E402

failures: list[str] = []


def check(ok: bool, what: str) -> None:
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def binding(lib: str, model: str, photo: str, max_diff: float) -> None:
    from quasar.runtime import Scorer

    data = open(photo, "rb").read()
    with Scorer(model, backend="onnxruntime") as py:
        (ref,) = py.score([photo])
    check(ref.ok, f"the Python runtime scores {photo}")
    with NativeScorer(model, library=load(lib)) as s:
        check(s.lib.path == lib and s.backend_name == "opencv" and s.batch_size >= 1,
              f"library {s.lib.path}, backend {s.backend_name}, batch {s.batch_size}")
        check(s.heads == py.heads and s.metadata == py.info.metadata, "heads and metadata as the Python runtime reads them")
        want_s = np.array([ref.scores[h] for h in s.heads], np.float32)
        want_m = np.array([ref.margins[h] for h in s.heads], np.float32)
        scores, margins = s.score_buffer(data, label=photo)
        d = max(float(np.abs(scores - want_s).max()), float(np.abs(margins - want_m).max()))
        check(d <= max_diff, f"score_buffer: scores and margins within {max_diff:g} of Python's (max diff {d:.2e})")
        images = [s.prepare_buffer(data, label=photo) for _ in range(3)]
        try:
            bs, bm, st = s.score_images(images)
        finally:
            for im in images:
                im.close()
        check(bs.shape == bm.shape == (3, len(s.heads)) and bs.dtype == np.float32, f"score_images: {bs.shape} float32")
        check(st == [Status.OK] * 3, f"score_images statuses {st}")
        d = float(max(np.abs(bs - want_s).max(), np.abs(bm - want_m).max()))
        check(d <= max_diff, f"score_images: a batch of 3 within {max_diff:g} of Python's (max diff {d:.2e})")
        try:
            s.prepare_buffer(b"<html>not an image</html>", label="page.jpg")
            check(False, "prepare_buffer refuses a non-image")
        except QuasarError as e:
            msg = str(e)
            check("page.jpg" in msg and "image error" in msg and "\n" not in msg, f"a non-image is one line: {msg}")


def perf_run(lib: str, model: str, images: str, env: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "report")
        cmd = [sys.executable, "-m", "quasar", "perf", "--backend", "native", "--native-lib", lib, "--model", model,
               "--images", images, "--count", "100", "--scenario", "all", "--duration", "0.5", "--min-queries", "8",
               "--plots", "none", "-o", out]
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        check(r.returncode == 0, "quasar perf --backend native exits 0"
              + ("" if r.returncode == 0 else f" (got {r.returncode}: {r.stderr[-2000:]})"))
        if r.returncode != 0:
            return
        rep = json.load(open(os.path.join(out, "report.json")))
        (t,) = rep["targets"]
        check(t["backend"] == "native" and t["runtime_backend"].startswith("native opencv (libquasar ")
              and lib in t["runtime_backend"], f"the report's backend: {t['runtime_backend']}")
        (m,) = rep["models"].values()
        with NativeScorer(model, library=lib) as s:
            check(m["heads"] == list(s.heads) and m["path"] == model and m["dynamic_size"] is False,
                  "the report's model: the static model's heads and path")
        skipped = rep["workload"]["skipped"]
        gif = [x for x in skipped if x.endswith("[backend native]")]
        check(any("palette.gif" in x and "GIF" in x for x in gif),
              f"the GIF this OpenCV cannot decode is left out with the library's reason: {gif}")
        check(rep["workload"]["count"] >= 8 and not any("palette.gif" in x for x in skipped if x not in gif),
              f"{rep['workload']['count']} images scored")
        runs = {(r["scenario"], r["config"]["mode"]): r for r in rep["runs"]}
        check(set(runs) == {(s, mo) for s in ("single-stream", "multi-stream", "offline", "server")
                            for mo in ("end-to-end", "model-only")}, f"every scenario and mode ran: {sorted(runs)}")
        for (scen, mode), r in sorted(runs.items()):
            lg, v = r["loadgen"], r["metric"]["value"]
            good = (r["config"]["backend"] == "native" and lg.get("validity") in ("VALID", "INVALID")
                    and lg.get("query_count", 0) >= 1 and r["sut"]["failed"] == 0)
            if scen == "server":  # no QPS kept the bound only if the report says why
                good = good and ((v is not None and v > 0) or any("no QPS kept" in n for n in r["notes"]))
            else:
                good = good and v is not None and v > 0
            check(good, f"{scen} {mode}: {r['metric']['what']} {v} {r['metric']['unit']}, LoadGen {lg.get('validity')}, "
                        f"{r['sut']['failed']} failed")
        off = runs[("offline", "model-only")]
        check(is_loadgens(off["metric"]["value"], off["loadgen"]["samples_per_s"]),
              f"Offline's number {off['metric']['value']} is LoadGen's samples/s {off['loadgen']['samples_per_s']}")
        ss = runs[("single-stream", "end-to-end")]
        lat = ss["loadgen"]["latency_ms"]
        check(lat["p50"] <= lat["p90"] <= lat["p99"] and is_loadgens(ss["metric"]["value"], lat["p90"]),
              "SingleStream end to end: p90 is LoadGen's")


def is_loadgens(value: float, loadgen: float) -> bool:
    """A report's headline ``value`` is LoadGen's number (6 significant digits) rounded as the report
    rounds it (quasar.perf.run.METRIC_DECIMALS): at 85.1234 samples/s the report says 85.123."""
    from quasar.perf.run import METRIC_DECIMALS

    return value == round(float(loadgen), METRIC_DECIMALS)


def refusal(lib: str, env: dict) -> None:
    from quasar.runtime.model import default_model_path

    dynamic = default_model_path()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "never")
        cmd = [sys.executable, "-m", "quasar", "perf", "--backend", "native", "--native-lib", lib, "--model", dynamic,
               "--synthetic", "64x64", "--count", "2", "--duration", "0.2", "-o", out]
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        lines = r.stderr.strip().splitlines()
        check(r.returncode == 2 and len(lines) == 1 and lines[0].startswith("quasar: error: backend native: ")
              and dynamic in lines[0] and "static" in lines[0] and "backend error" in lines[0],
              f"a dynamic model is refused in one line naming it: rc {r.returncode}, {lines}")
        check(not os.path.exists(os.path.join(out, "report.json")), "nothing measured for the refused model")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True)
    ap.add_argument("--model", required=True, help="static 384x512 model: parity with the Python runtime")
    ap.add_argument("--small-model", required=True, help="static 64x64 model: the perf run (fast)")
    ap.add_argument("--images", required=True, help="a folder of images, one of them a GIF")
    ap.add_argument("--photo", required=True)
    ap.add_argument("--max-diff", type=float, default=1e-3)
    args = ap.parse_args()
    lib = os.path.abspath(args.lib)
    # below 100 samples/s LoadGen's 6 significant digits carry 4 decimals (the old exact comparison failed)
    check(is_loadgens(85.123, 85.1234) and is_loadgens(1234.57, 1234.57) and not is_loadgens(85.12, 85.1234),
          "the headline value is compared with LoadGen's number as the report rounds it")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("QUASAR_MODEL", None)  # the refusal uses the shipped (dynamic) default model
    os.environ.pop("QUASAR_MODEL", None)
    binding(lib, args.model, args.photo, args.max_diff)
    perf_run(lib, args.small_model, args.images, env)
    refusal(lib, env)
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
