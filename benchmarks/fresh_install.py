"""The README's commands from a fresh clone in a fresh virtual environment: times, disk sizes, outcome.

    python benchmarks/fresh_install.py [--ref HEAD] [--full] [--out benchmarks/results/fresh_install.json]

Clones this repository at ``--ref`` into a temporary folder, creates a venv there
(``python3 -m venv``, no system site-packages) and runs the README's command 1 in it, step by step,
with an empty ``QUASAR_CACHE`` (so the photo fetch downloads its Debian package): ``pip install .``,
``python -m quasar.photos --sources lomiri-wallpapers-16.04``, ``quasar score -r <photos> -o
scores.csv``. ``--full`` then runs command 2 (``bash .ci/test``) in the same venv: long (torch and
the whole suite). Records each step's exit status and wall seconds, the venv's size after each
install, and the machine (pip's own download cache is used as it is: ``pip_cache`` says whether pip
had one).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def du_mb(path: Path) -> float:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return round(total / 2**20, 1)


def step(name: str, cmd: list[str], cwd: Path, env: dict, log: list[dict]) -> bool:
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    rec = {"step": name, "command": " ".join(cmd), "rc": r.returncode, "seconds": round(time.perf_counter() - t, 1)}
    if r.returncode:
        rec["stderr_tail"] = r.stderr[-1500:]
    log.append(rec)
    print(f"{name}: rc {r.returncode}, {rec['seconds']} s", flush=True)
    return r.returncode == 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ref", default="HEAD", help="what to clone (default: %(default)s)")
    ap.add_argument("--full", action="store_true", help="also run command 2 (bash .ci/test) in the venv")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "fresh_install.json"),
                    help="results file (default: %(default)s)")
    args = ap.parse_args(argv)
    from quasar.machine import machine_info

    work = Path(tempfile.mkdtemp(prefix="quasar-fresh-"))
    try:
        clone, venv, cache = work / "clone", work / "venv", work / "cache"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        subprocess.run(["git", "checkout", "-q", args.ref], cwd=clone, check=True)
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True, text=True).stdout.strip()
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "QUASAR_MODEL", "VIRTUAL_ENV")}
        env["QUASAR_CACHE"] = str(cache)
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        log: list[dict] = []
        sizes: dict[str, float] = {}
        ok = step("venv", [sys.executable, "-m", "venv", str(venv)], clone, env, log)
        py = str(venv / "bin" / "python")
        ok = ok and step("pip install .", [py, "-m", "pip", "install", "-q", "."], clone, env, log)
        sizes["venv_after_light_install_mb"] = du_mb(venv)
        ok = ok and step("photos", [py, "-m", "quasar.photos", "--sources", "lomiri-wallpapers-16.04"], clone, env, log)
        ok = ok and step("score", [str(venv / "bin" / "quasar"), "score", "-r", str(cache / "photos"), "-o",
                                   "scores.csv"], clone, env, log)
        scored = sum(1 for _ in open(clone / "scores.csv")) - 1 if (clone / "scores.csv").exists() else 0
        sizes["photo_cache_mb"] = du_mb(cache)
        if args.full and ok:
            env["PYTHON"] = py
            ok = step("bash .ci/test", ["bash", ".ci/test"], clone, env, log)
            sizes["venv_after_test_extras_mb"] = du_mb(venv)
        pip_cache = subprocess.run([py, "-m", "pip", "cache", "dir"], capture_output=True, text=True).stdout.strip()
        data = {"machine": machine_info(), "commit": commit, "full": args.full, "ok": ok, "steps": log,
                "sizes": sizes, "scored_photos": scored, "pip_cache": bool(pip_cache and os.path.isdir(pip_cache)),
                "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
        print(args.out)
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
