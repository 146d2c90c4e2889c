"""``quasar serve`` as a user runs it: a subprocess that joins the session's Ray cluster, answers on a
free local port, and exits 0 on SIGTERM after answering what it holds. Plus the missing-extra line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fixtures_images import encode, pattern
from test_scale_serve import free_port, request

from quasar.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quasar_serve_answers_and_stops_on_sigterm(ray_nodes, tmp_path):
    port = free_port()
    log = open(tmp_path / "serve.log", "w+")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "quasar.cli", "serve", "--address", ray_nodes.address,
                             "--port", str(port), "--max-batch-size", "4", "--batch-wait-ms", "2000"],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if request(url + "/healthz", timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "quasar serve did not come up"
            time.sleep(0.5)
        img = encode(pattern(120, 160), ".png")
        out: dict = {}
        t = threading.Thread(target=lambda: out.update(r=request(url + "/score", img, "image/png")))
        t.start()  # waits ~2 s in the batch queue (--batch-wait-ms), so SIGTERM finds it in flight
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 0
        t.join(30)
        status, body = out["r"]
        assert status == 200 and set(body.get("scores", {})) >= {"quality"}, (status, body)
        text = (tmp_path / "serve.log").read_text()
        assert f"on http://127.0.0.1:{port}" in text and "stopping" in text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def test_missing_ray_is_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    assert main(["serve", "--port", "8123"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install 'quasar-engine[ray]'" in err and "quasar serve" in err
    assert main(["score", "x.jpg", "--ray"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "quasar-engine[ray]" in err
