"""Fair dynamic batching for the service: batches take images from the waiting clients in turn.

Every image of every request waits in :class:`FairQueue`, one queue per request, the requests
grouped by client (the peer address). A batch is made only when the scorer can take one, by taking
one image from each client in turn (within a client, from each of its requests in turn), so a
request of 64 large images adds at most one image per batch ahead of anyone else's: a one-image
request that arrives behind it is in the next batch made, not after all 64 (head of line).

:class:`FairBatcher` runs the batches: at most ``concurrency`` at once, each of up to ``max_batch``
images, made ``wait_s`` after the first waiting image arrived unless ``max_batch`` are waiting
sooner. Plain asyncio, no Ray: ``score`` is any blocking ``list -> list`` function, run in a thread.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import OrderedDict, deque
from collections.abc import Callable


class FairQueue:
    """Waiting ``(item, future)`` pairs: client -> request -> images, taken round robin at both levels."""

    def __init__(self) -> None:
        self._clients: OrderedDict[str, OrderedDict[int, deque]] = OrderedDict()
        self._ids = itertools.count()
        self.size = 0

    def put(self, client: str, entries: list) -> None:
        """Queue one request's ``entries`` (in order) for ``client``."""
        if entries:
            self._clients.setdefault(client, OrderedDict())[next(self._ids)] = deque(entries)
            self.size += len(entries)

    def take(self, n: int) -> list:
        """Up to ``n`` entries: one from each client in turn (its requests in turn), round after round."""
        out: list = []
        while len(out) < n and self._clients:
            client, requests = next(iter(self._clients.items()))
            rid, entries = next(iter(requests.items()))
            out.append(entries.popleft())
            requests.move_to_end(rid)
            if not entries:
                del requests[rid]
            self._clients.move_to_end(client)
            if not requests:
                del self._clients[client]
        self.size -= len(out)
        return out


class FairBatcher:
    """Score items in fair dynamic batches; ``await batcher.submit(client, items)`` -> their results in order."""

    def __init__(self, score: Callable[[list], list], max_batch: int, wait_s: float, concurrency: int = 2) -> None:
        self.score, self.max_batch, self.wait_s = score, max_batch, wait_s
        self.queue = FairQueue()
        self._arrived = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)
        self._loop_task: asyncio.Task | None = None

    async def submit(self, client: str, items: list) -> list:
        loop = asyncio.get_running_loop()
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = loop.create_task(self._run())
        futures = [loop.create_future() for _ in items]
        self.queue.put(client, list(zip(items, futures, strict=True)))
        self._arrived.set()
        return list(await asyncio.gather(*futures))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._slots.acquire()
            while self.queue.size == 0:
                self._arrived.clear()
                await self._arrived.wait()
            deadline = loop.time() + self.wait_s
            while self.queue.size < self.max_batch and (left := deadline - loop.time()) > 0:
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), left)
                except asyncio.TimeoutError:
                    break
            batch = self.queue.take(self.max_batch)
            loop.create_task(self._score(batch))

    async def _score(self, batch: list) -> None:
        try:
            results = await asyncio.to_thread(self.score, [item for item, _ in batch])
            for (_, fut), r in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(r)
        except Exception as e:  # every waiting request hears of it; the loop goes on
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(e)
        finally:
            self._slots.release()
