"""``ServiceClient``: score paths with a running ``quasar serve``, as :class:`~quasar.runtime.Scorer` does locally.

The client reads the files itself and sends them in ``multipart/form-data`` requests of several files
each, bounded by files, bytes and pixels per request (at most what the service's ``/metadata`` says it
takes); the service's answers become the same :class:`~quasar.runtime.ScoreRecord` a local scorer
yields, in input order, with each file's own error. A request the service refuses as a whole (4xx)
is sent again one file per request, so one bad file gets its one-line error and the others score.
``concurrency`` requests are in flight at once (a replica batches the images of concurrent requests).
"""

from __future__ import annotations

import urllib.parse
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from quasar.client import multipart
from quasar.client.transport import Answer, Transport
from quasar.errors import QuasarError
from quasar.io import read_file
from quasar.io.decode import ImageError
from quasar.io.formats import probe
from quasar.lifecycle import Closeable
from quasar.runtime.scorer import ScoreRecord
from quasar.runtime.sources import Item, iter_items

MiB = 1 << 20
BATCH_FILES = 16  # files per request by default (the service's --max-files is 64)
BATCH_BYTES = 8 * MiB  # bytes per request by default (the service's --max-body-mb is 32)
BATCH_PIXELS = 128_000_000  # the service's default --max-request-pixels, when /metadata gives none


@dataclass(frozen=True)
class ServiceInfo:
    """What ``/metadata`` says about the served model: its heads (as :class:`~quasar.runtime.ModelInfo`
    names them) and the service's per-request limits."""

    model: str
    heads: tuple[str, ...]
    summary_heads: tuple[str, ...]
    explain_heads: tuple[str, ...]
    limits: dict = field(default_factory=dict)

    @property
    def explained_heads(self) -> tuple[str, ...]:
        shown = set(self.summary_heads) | set(self.explain_heads)
        return tuple(h for h in self.heads if h in shown)

    @classmethod
    def from_metadata(cls, meta: dict, where: str) -> ServiceInfo:
        heads = meta.get("heads")
        if not isinstance(heads, list) or not heads or not all(isinstance(h, str) for h in heads):
            raise QuasarError(f"{where}: no model heads in the answer (is this a quasar serve address?)")
        summary = tuple(meta.get("summary_heads") or heads)
        return cls(str(meta.get("model", "")), tuple(heads), summary, tuple(meta.get("explain_heads") or ()),
                   meta.get("limits") if isinstance(meta.get("limits"), dict) else {})


@dataclass
class _Entry:
    """One input on its way: the data to send, or already its error."""

    label: str
    data: bytes | None = None
    error: str | None = None


class ServiceClient(Closeable):
    """Scores through ``quasar serve`` at ``url``. ``token``: the service's bearer token. ``timeout``: seconds
    a request may take (each try); ``retries``: more tries after a busy answer or a dropped connection
    (:mod:`quasar.client.transport`). ``batch_files`` / ``batch_bytes``: most files and bytes per request
    (capped by the service's limits). ``margins``: also ask for each head's margin.

        with ServiceClient("http://127.0.0.1:8000") as client:
            for rec in client.score_iter("photos/", recursive=True):
                print(rec.source, rec.scores, rec.error)
    """

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 120.0, retries: int = 5,
                 batch_files: int = BATCH_FILES, batch_bytes: int = BATCH_BYTES, concurrency: int = 2,
                 margins: bool = False, backoff_s: float = 0.5, max_backoff_s: float = 30.0) -> None:
        if batch_files < 1 or batch_bytes < 1 or concurrency < 1:
            raise QuasarError("batch_files, batch_bytes and concurrency must be at least 1")
        self.transport = Transport(url, token, timeout=timeout, retries=retries, backoff_s=backoff_s,
                                   max_backoff_s=max_backoff_s)
        self.url = self.transport.url
        self.batch_files, self.batch_bytes, self.concurrency = batch_files, batch_bytes, concurrency
        self.margins = margins
        self._info: ServiceInfo | None = None

    # -- the service ---------------------------------------------------------------------------------
    def _get(self, path: str) -> dict:
        answer = self.transport.request("GET", path)
        d = answer.json()
        if answer.status != 200 or d is None:
            raise QuasarError(f"{self.url}{path}: {answer.status} {answer.reason()}")
        return d

    def health(self) -> dict:
        """``GET /healthz``: ``{"status": "ok"}`` from a live service (else QuasarError)."""
        return self._get("/healthz")

    def metadata(self) -> dict:
        """``GET /metadata``: the model, its heads, the service's batching and limits."""
        return self._get("/metadata")

    @property
    def info(self) -> ServiceInfo:
        if self._info is None:
            self._info = ServiceInfo.from_metadata(self.metadata(), f"{self.url}/metadata")
        return self._info

    @property
    def heads(self) -> tuple[str, ...]:
        return self.info.heads

    def _bounds(self) -> tuple[int, int, int, int | None]:
        """(files, bytes, pixels per request, pixels per image) this client keeps to."""
        lim = self.info.limits
        files = min(self.batch_files, int(lim.get("max_files") or self.batch_files))
        body = int(lim.get("max_body_bytes") or 32 * MiB)
        pixels = int(lim.get("max_request_pixels") or BATCH_PIXELS)
        return files, min(self.batch_bytes, body), pixels, lim.get("max_pixels")

    # -- scoring -------------------------------------------------------------------------------------
    def score_iter(self, inputs, recursive: bool = False) -> Iterator[ScoreRecord]:
        """Records for paths, folders (``recursive``) or encoded bytes, in order, as they come back."""
        return self.score_items(iter_items(inputs, recursive))

    def score(self, inputs, recursive: bool = False) -> list[ScoreRecord]:
        return list(self.score_iter(inputs, recursive))

    def score_items(self, items: Iterable[Item]) -> Iterator[ScoreRecord]:
        """Score prepared :class:`~quasar.runtime.sources.Item` (what ``quasar score --url`` calls)."""
        self.info  # noqa: B018 (fetch the heads and limits before the first request, also as a check)
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="quasar-client")
        pending: deque[Future] = deque()
        try:
            for batch in self._batches(items):
                pending.append(pool.submit(self._send, batch))
                while len(pending) > self.concurrency or (pending and pending[0].done()):
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()
        finally:
            if pending:  # stopped early (an error, Ctrl-C, the caller closed us): end the requests in flight now
                self.transport.cancel()
                for f in pending:
                    f.cancel()
            pool.shutdown(wait=True)
            self.transport.close()  # the pool's threads are gone: so are their connections
            self.transport.resume()

    def _entry(self, item: Item, body_limit: int) -> _Entry:
        if item.error is not None:
            return _Entry(item.label, error=item.error)
        if item.array is not None:
            return _Entry(item.label, error="arrays are not sent to the service: pass encoded bytes (PNG) or paths")
        try:
            data = bytes(item.data) if item.data is not None else read_file(item.path)
        except ImageError as e:
            return _Entry(item.label, error=str(e))
        if len(data) + multipart.overhead(multipart.part_name(item.label, 0)) + 64 > body_limit:
            return _Entry(item.label, error=f"file is {len(data) / MiB:.1f} MiB, over the service's request "
                                            f"limit ({body_limit / MiB:.0f} MiB, its --max-body-mb)")
        return _Entry(item.label, data=data)

    def _batches(self, items: Iterable[Item]) -> Iterator[list[_Entry]]:
        """Entries grouped into requests: at most ``files`` files, ``size`` bytes and ``pixels`` pixels each
        (an image alone over a bound still goes alone: the service answers for it)."""
        files, size, pixels, max_pixels = self._bounds()
        body_limit = int(self.info.limits.get("max_body_bytes") or 32 * MiB)
        batch: list[_Entry] = []
        n = nbytes = npix = 0
        for item in items:
            e = self._entry(item, body_limit)
            if e.data is not None:
                px = probe(e.data).pixels or 0
                px = px if max_pixels is None or px <= max_pixels else 0  # a bomb is refused on its own
                cost = len(e.data) + multipart.overhead(multipart.part_name(e.label, 0))
                if n and (n + 1 > files or nbytes + cost > size or npix + px > pixels):
                    yield batch
                    batch, n, nbytes, npix = [], 0, 0, 0
                n, nbytes, npix = n + 1, nbytes + cost, npix + px
            batch.append(e)
        if batch:
            yield batch

    def _send(self, batch: list[_Entry]) -> list[ScoreRecord]:
        """One request for the batch's data; the records of the whole batch, in order."""
        sent = [e for e in batch if e.data is not None]
        got: list[ScoreRecord] = []
        if sent:
            got = self._request(sent)
        it = iter(got)
        return [next(it) if e.data is not None else ScoreRecord(e.label, error=e.error) for e in batch]

    def _request(self, sent: list[_Entry]) -> list[ScoreRecord]:
        files = [(multipart.part_name(e.label, i), e.data) for i, e in enumerate(sent)]
        content_type, body = multipart.encode(files)
        query = "?" + urllib.parse.urlencode({"margins": 1}) if self.margins else ""
        answer = self.transport.request("POST", "/score" + query, body, content_type)
        if answer.status == 200:
            return self._records(sent, answer)
        if 400 <= answer.status < 500:
            if len(sent) > 1:  # refused as a whole: each file alone, so only the bad one fails
                return [r for e in sent for r in self._request([e])]
            return [ScoreRecord(sent[0].label, error=answer.reason())]
        raise QuasarError(f"{self.url}/score: {answer.status} {answer.reason()}")

    def _records(self, sent: list[_Entry], answer: Answer) -> list[ScoreRecord]:
        d = answer.json()
        results = d.get("results") if d is not None else None
        if not isinstance(results, list) or len(results) != len(sent):
            raise QuasarError(f"{self.url}/score: answer not understood (expected {len(sent)} results, as "
                              "quasar serve gives them)")
        return [_record(e.label, r) for e, r in zip(sent, results, strict=True)]

    def close(self) -> None:
        transport = getattr(self, "transport", None)
        if transport is not None:
            transport.close()


def _record(label: str, r) -> ScoreRecord:
    if not isinstance(r, dict):
        return ScoreRecord(label, error="the service's answer for this file is not an object")
    if r.get("error") is not None:
        return ScoreRecord(label, error=str(r["error"]))
    scores = {str(k): float(v) for k, v in (r.get("scores") or {}).items()}
    margins = {str(k): float(v) for k, v in (r.get("margins") or {}).items()}
    warning = r.get("warning")
    return ScoreRecord(label, scores, margins, warning=None if warning is None else str(warning))
