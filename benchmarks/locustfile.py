"""Locust user for ``quasar serve``: closed-loop clients, each POSTs one JPEG to ``/score`` and waits for the answer.

    QUASAR_LOADTEST_IMAGES=a.jpg:b.jpg locust -f benchmarks/locustfile.py --headless -u 8 -r 8 \\
        --run-time 20s --host http://127.0.0.1:8000 --csv out/locust

Images are sent round robin (``QUASAR_LOADTEST_IMAGES``: paths joined with ``os.pathsep``); with
``QUASAR_LOADTEST_TOKEN`` set, the bearer token is sent too. A request fails unless it is answered 200
with scores. ``benchmarks/serve_loadtest.py`` drives it (loopback only, bounded in time).
"""

from __future__ import annotations

import itertools
import os

from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

_PATHS = [p for p in os.environ.get("QUASAR_LOADTEST_IMAGES", "").split(os.pathsep) if p]
_BODIES = [open(p, "rb").read() for p in _PATHS]
_NEXT = itertools.count()
_HEADERS = {"Content-Type": "image/jpeg"}
if os.environ.get("QUASAR_LOADTEST_TOKEN"):
    _HEADERS["Authorization"] = f"Bearer {os.environ['QUASAR_LOADTEST_TOKEN']}"


class ScoreUser(FastHttpUser):
    wait_time = constant(0)  # closed loop: the next request as soon as the answer is in
    network_timeout = 120.0
    connection_timeout = 30.0

    @task
    def score(self) -> None:
        if not _BODIES:
            raise RuntimeError("QUASAR_LOADTEST_IMAGES names no image")
        body = _BODIES[next(_NEXT) % len(_BODIES)]
        with self.client.post("/score", data=body, headers=_HEADERS, name="/score", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"status {r.status_code}")
            elif "scores" not in (r.json() or {}):
                r.failure("no scores in the answer")
