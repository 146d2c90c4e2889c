"""Find the model to score with (``$QUASAR_MODEL``, the shipped default, or the cached export); reading and
verifying a model file (ONNX, ``.ort`` or a TensorRT engine with its sidecar) is :mod:`quasar.model_file`
(the floor), re-exported here for the runtime's callers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from quasar.errors import QuasarError
from quasar.model_file import ModelInfo, load_model_info, model_kind, read_model_metadata, verify_model
from quasar.shipped import shipped_model_path

ENV_MODEL = "QUASAR_MODEL"

__all__ = ["ModelInfo", "default_model_path", "load_model_info", "model_kind", "read_model_metadata", "verify_model"]


_default_lock = threading.Lock()
_default_path: str | None = None


def default_model_path() -> str:
    """``$QUASAR_MODEL``, else the default model shipped in the package, else (a development tree
    whose pack changed) the default model exported and cached on first use.

    The export runs in a subprocess (``python -m quasar.export.default`` prints the cached path), so
    this process never imports torch. The answer is remembered for the life of the process.
    """
    global _default_path
    env = os.environ.get(ENV_MODEL)
    if env:
        return env
    with _default_lock:
        if _default_path is None:
            _default_path = shipped_model_path()
        if _default_path is None:
            cmd = [sys.executable, "-m", "quasar.export.default"]
            try:
                r = run_forwarding_notes(cmd)
            except OSError as e:
                raise QuasarError(f"cannot run {' '.join(cmd)}: {e}") from None
            lines = [ln.strip() for ln in r.stdout.splitlines() if ln.strip()]
            if r.returncode != 0 or not lines or not os.path.exists(lines[-1]):
                tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
                raise QuasarError(f"no default model: `python -m quasar.export.default` failed ({tail}); "
                                  f"pass --model FILE or set {ENV_MODEL}")
            _default_path = lines[-1]
        return _default_path


NOTE_PREFIX = "quasar: "  # stderr lines of the exporter that are meant for the user as they happen


def run_forwarding_notes(cmd: list[str]) -> subprocess.CompletedProcess:
    """Run ``cmd`` capturing its output, but pass its stderr lines that start with ``NOTE_PREFIX``
    (other than errors) on to this process's stderr as they come, so that the first-use export says
    what it is doing instead of pausing silently. Its whole stderr is still returned."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err_lines: list[str] = []

    def pump() -> None:
        for line in proc.stderr:
            err_lines.append(line)
            if line.startswith(NOTE_PREFIX) and not line.startswith(NOTE_PREFIX + "error"):
                print(line.rstrip("\n"), file=sys.stderr, flush=True)

    t = threading.Thread(target=pump, name="quasar-export-notes", daemon=True)
    t.start()
    try:
        out = proc.stdout.read()
        proc.wait()
    except BaseException:  # Ctrl-C: do not leave the exporter running
        proc.kill()
        proc.wait()
        raise
    finally:
        t.join()
        proc.stdout.close()
        proc.stderr.close()
    return subprocess.CompletedProcess(cmd, proc.returncode, out, "".join(err_lines))
