"""A replica's memory stays bounded: its process runs with few malloc arenas, and the heap a batch
freed goes back to the system (quasar.runtime.heap). No Ray cluster needed: the service class is
driven directly, in a fresh process, with the tiny model; no timing, only resident memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[1]

# 4 rounds of the same 48 requests (distinct sizes, 0.4 to 3 MP, random pixels as PNG) from 12 clients
# at once, through the service's fair batcher: RSS before any of them, then after each round
CHILD = textwrap.dedent("""
    import asyncio, json, sys
    from dataclasses import asdict
    import cv2, numpy as np
    from quasar.runtime.sources import Item
    from quasar.scale.serve import ScoringService, ServiceOptions

    def rss():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

    async def main():
        svc = ScoringService(sys.argv[1], asdict(ServiceOptions(max_batch_size=8, batch_wait_ms=5, workers=2,
                                                                threads=1)))
        rng = np.random.default_rng(0)
        sizes = zip(rng.integers(600, 1500, 48), rng.integers(600, 2000, 48))
        bodies = [cv2.imencode(".png", rng.integers(0, 256, (h, w, 3), np.uint8))[1].tobytes() for h, w in sizes]
        small = cv2.imencode(".png", np.zeros((64, 64, 3), np.uint8))[1].tobytes()
        await svc.batcher.submit("warm-up", [Item("i", data=small)])

        async def client(k):
            for j in range(k, len(bodies), 12):
                (rec,) = await svc.batcher.submit(f"c{k}", [Item("i", data=bodies[j])])
                if not rec.ok:
                    raise SystemExit(rec.error)

        out = [rss()]
        for _ in range(4):
            await asyncio.gather(*(client(k) for k in range(12)))
            out.append(rss())
        print(json.dumps(out))

    asyncio.run(main())
""")


def test_the_replica_process_gets_few_malloc_arenas():
    from quasar.runtime.heap import ARENAS_ENV
    from quasar.scale.serve import ServiceOptions, build_app

    opts = build_app(None, ServiceOptions())._bound_deployment.ray_actor_options
    assert opts["runtime_env"]["env_vars"] == {ARENAS_ENV: "2"}
    opts = build_app(None, ServiceOptions(malloc_arenas=None))._bound_deployment.ray_actor_options
    assert "runtime_env" not in opts


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status; glibc's malloc_trim")
def test_replica_memory_is_flat_over_repeated_rounds_and_gives_back_what_a_batch_freed(tiny):
    """Before: the heap kept each round's decode buffers (+50 MB after the rounds here, and still
    creeping up in round 4); now the service process (run as a replica is, with the arena limit its
    deployment sets) keeps about what the model needs."""
    from quasar.runtime.heap import ARENAS_ENV
    from quasar.scale.serve import ServiceOptions

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           ARENAS_ENV: str(ServiceOptions().malloc_arenas)}
    r = subprocess.run([sys.executable, "-c", CHILD, tiny], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    before, *rounds = json.loads(r.stdout)
    assert rounds[3] - rounds[1] <= 0.02 * rounds[1], rounds  # flat: rounds 3 and 4 add at most 2 %
    assert rounds[3] - before <= 30, (before, rounds)  # MB kept after 192 images of up to 3 MP
