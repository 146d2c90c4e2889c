"""``quasar score --ray`` and ``quasar serve`` as a user sees them: nothing from Ray on the terminal.

Each runs as a subprocess with its own private cluster, stdout on a pseudo-terminal (where Ray's
colour reset would show) and stderr captured: stderr holds only QUASAR's own lines (no E-level core
worker lines, no Serve INFO lines), and neither stream has an ANSI colour code.
"""

from __future__ import annotations

import errno
import os
import pty
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures_images import encode, pattern
from test_scale_serve import free_port, request

pytestmark = pytest.mark.slow  # each starts a private Ray cluster (~15-30 s)

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
       "RAY_USAGE_STATS_ENABLED": "0"}
ENV.pop("RAY_ADDRESS", None)
RAY_LOG = re.compile(r"^\[?\d{4}-\d\d-\d\d[ T][\d:,.]+ [EWF] \d+")  # Ray's C++ log lines: [date time E pid tid]
ANSI = "\x1b["


def _drain(master: int) -> str:
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError as e:  # EIO: the child side is closed and everything was read
            if e.errno == errno.EIO:
                break
            raise
        if not chunk:
            break
        out += chunk
    return out.decode("utf-8", "replace")


def _run_on_tty(args: list[str], *, until=None) -> tuple[int, str, str]:
    """Run ``python -m quasar ARGS`` with stdout on a pty; ``until(proc)`` may stop it. -> (rc, tty, stderr)."""
    master, slave = pty.openpty()
    with open(os.devnull) as devnull:
        proc = subprocess.Popen([sys.executable, "-m", "quasar", *args], stdin=devnull, stdout=slave,
                                stderr=subprocess.PIPE, env=ENV, cwd=ROOT)
    os.close(slave)
    try:
        if until is not None:
            until(proc)
        _, err = proc.communicate(timeout=240)
        tty = _drain(master)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return proc.returncode, tty, err.decode("utf-8", "replace")


def _check_quiet(tty: str, err: str, own: tuple[str, ...]) -> None:
    assert ANSI not in tty and ANSI not in err, (tty, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert not [line for line in lines if RAY_LOG.match(line)], err
    assert all(line.startswith(own) for line in lines), err


def test_score_ray_shows_no_ray_lines(tmp_path):
    paths = []
    for i in range(3):
        p = tmp_path / f"p{i}.png"
        p.write_bytes(encode(pattern(120 + 8 * i, 160), ".png"))
        paths.append(str(p))
    rc, tty, err = _run_on_tty(["score", "--ray", *paths, "-o", str(tmp_path / "r.csv")])
    assert rc == 0, err
    assert len((tmp_path / "r.csv").read_text().splitlines()) == 4
    _check_quiet(tty, err, ("quasar score:",))


def test_serve_start_and_stop_show_no_ray_lines():
    port = free_port()

    def serve_then_stop(proc) -> None:
        deadline = time.monotonic() + 180
        while True:
            try:
                if request(f"http://127.0.0.1:{port}/healthz", timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, "quasar serve ended early"
            assert time.monotonic() < deadline, "quasar serve did not come up"
            time.sleep(0.5)
        status, _ = request(f"http://127.0.0.1:{port}/score", encode(pattern(120, 160), ".png"), "image/png")
        assert status == 200
        proc.send_signal(signal.SIGINT)

    rc, tty, err = _run_on_tty(["serve", "--port", str(port), "--drain-s", "5"], until=serve_then_stop)
    assert rc == 0, err
    assert "stopping" in err
    _check_quiet(tty, err, ("quasar serve:",))
