"""Cost of one fused model against another, side by side in one run: model only and end to end.

Issue 20's budget: the default model after the close-call work may cost at most 1.25x the former
default per image on CPU. Both models are timed in the same process, interleaved round by round
(A, B, A, B, ...), so machine noise hits both alike; only the ratio is meant to be compared.

* model only: ONNX Runtime on one uint8 batch of 4 x 384 x 512 (the preprocessed camera shape);
* end to end: ``Scorer.score`` on the camera JPEG set of ``quasar bench`` (12 MP and 5 MP files,
  decoding and resizing included).

Run: ``python benchmarks/model_cost.py [--baseline FILE] [--rounds N]``; the baseline defaults to
the previous shipped model, read from git (``git show REV:quasar/data/default_quality-fp32.onnx``).
Writes ``benchmarks/results/model_cost.{json,md}``.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from quasar_bench.camera import generate
from quasar_bench.results import write_results

from quasar.contract import INPUT_NAME
from quasar.machine import machine_info
from quasar.paths import cache_dir

HERE = Path(__file__).resolve().parent
SHIPPED = "quasar/data/default_quality-fp32.onnx"


def baseline_from_git(rev: str, dest: Path) -> str:
    """The shipped model at ``rev``, sealed with today's digest (models exported before the digest are
    refused by the runtime; sealing adds the metadata entry only, the graph is the same)."""
    from quasar.export.metadata import seal_model

    data = subprocess.run(["git", "show", f"{rev}:{SHIPPED}"], cwd=HERE.parent, check=True,
                          capture_output=True).stdout
    dest.write_bytes(data)
    seal_model(str(dest))
    return str(dest)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default=None, help="the model to compare with (default: --rev's shipped model)")
    ap.add_argument("--rev", default="5117278", help="git revision of the baseline's shipped model (default: the "
                                                     "last commit before issue 20)")
    ap.add_argument("--candidate", default=str(HERE.parent / SHIPPED), help="default: the shipped model")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--images", type=int, default=12)
    args = ap.parse_args(argv)
    import onnxruntime as ort

    from quasar.runtime import Scorer

    with tempfile.TemporaryDirectory() as tmp:
        base = args.baseline or baseline_from_git(args.rev, Path(tmp) / "baseline.onnx")
        models = {"baseline": base, "candidate": args.candidate}
        paths = generate("camera", cache_dir() / "bench" / "camera", args.images)
        batch = np.random.default_rng(0).integers(0, 256, (4, 384, 512, 3), dtype=np.uint8)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        sessions = {k: ort.InferenceSession(m, opts, providers=["CPUExecutionProvider"]) for k, m in models.items()}
        scorers = {k: Scorer(m) for k, m in models.items()}
        try:
            for k in models:  # warm-up
                sessions[k].run(None, {INPUT_NAME: batch})
                scorers[k].score(paths[:2])
            t_model = {k: [] for k in models}
            t_e2e = {k: [] for k in models}
            for _ in range(args.rounds):
                for k in models:
                    t = time.perf_counter()
                    sessions[k].run(None, {INPUT_NAME: batch})
                    t_model[k].append((time.perf_counter() - t) / len(batch))
                for k in models:
                    t = time.perf_counter()
                    scorers[k].score(paths)
                    t_e2e[k].append((time.perf_counter() - t) / len(paths))
        finally:
            for s in scorers.values():
                s.close()
    med = {mode: {k: 1000 * float(np.median(v)) for k, v in times.items()}
           for mode, times in (("model_only", t_model), ("end_to_end", t_e2e))}
    result = {"machine": machine_info(), "baseline": args.baseline or f"git {args.rev}:{SHIPPED}",
              "candidate": args.candidate, "rounds": args.rounds, "images": len(paths),
              "ms_per_image_median": med,
              "ratio": {mode: v["candidate"] / v["baseline"] for mode, v in med.items()},
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    m = result["machine"]
    md = [f"Machine: {m['cpu']} ({m['cores']} cores; {', '.join(m['isa'])})",
          f"Baseline: {result['baseline']}; candidate: the shipped model. Median of {args.rounds} interleaved rounds.", "",
          "| mode | baseline ms/image | candidate ms/image | candidate / baseline |", "|---|---|---|---|"]
    for mode, v in med.items():
        md.append(f"| {mode.replace('_', ' ')} | {v['baseline']:.1f} | {v['candidate']:.1f} | "
                  f"{result['ratio'][mode]:.3f} |")
    write_results(HERE / "results" / "model_cost", result, md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
