"""HTTP to the service: one keep-alive connection per thread, retries with exponential backoff.

A request is tried again (at most ``retries`` more times) when the service answers 408, 429, 502, 503 or
504, or when the connection fails or times out: scoring changes nothing on the service, so sending a
request twice is safe. Before each new try the client waits the answer's ``Retry-After`` (seconds or an
HTTP date) when it has one, else ``backoff_s`` doubled at every try (with jitter), never more than
``max_backoff_s``. Any other answer is returned to the caller; running out of tries, a refused token
(401/403) or an address that is no quasar service is one :class:`~quasar.errors.QuasarError` line.
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from quasar.errors import QuasarError

RETRY_STATUSES = frozenset({408, 429, 502, 503, 504})


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> dict | None:
        """The body as a JSON object, or None when it is not one (a proxy's HTML page, say)."""
        try:
            d = json.loads(self.body)
        except ValueError:
            return None
        return d if isinstance(d, dict) else None

    def reason(self) -> str:
        """The service's one-line ``error``, else the first line of the body."""
        d = self.json()
        if d is not None and isinstance(d.get("error"), str):
            return d["error"]
        text = self.body.decode("utf-8", "replace").strip().split("\n", 1)[0][:200]
        return text or http.client.responses.get(self.status, "no reason given")


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


class Transport:
    """Requests to one base URL (``http://host:port[/prefix]``) with a bearer token when given."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 120.0, retries: int = 5,
                 backoff_s: float = 0.5, max_backoff_s: float = 30.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise QuasarError(f"--url {url!r}: not an http:// or https:// address of a quasar serve service")
        try:
            parts.port  # noqa: B018 (raises on a bad port)
        except ValueError:
            raise QuasarError(f"--url {url!r}: bad port") from None
        if retries < 0 or timeout <= 0 or backoff_s < 0:
            raise QuasarError("retries must be >= 0, timeout > 0 and backoff_s >= 0")
        self.url = url.rstrip("/")
        self.parts, self.prefix = parts, parts.path.rstrip("/")
        self.token, self.timeout, self.retries = token, timeout, retries
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self._local = threading.local()
        self._open: set[http.client.HTTPConnection] = set()  # every thread's connection, for cancel()
        self._lock = threading.Lock()
        self._cancelled = threading.Event()

    def sleep(self, seconds: float) -> None:
        """How a retry waits (tests record the waits instead): ends early, raising, on :meth:`cancel`."""
        if self._cancelled.wait(seconds):
            raise QuasarError(f"{self.url}: cancelled")

    def cancel(self) -> None:
        """Stop every request in flight (their sockets shut down) and every retry waiting; until :meth:`resume`."""
        self._cancelled.set()
        with self._lock:
            conns = list(self._open)
        for conn in conns:  # a shutdown socket ends a blocked read in its own thread (closing it there is theirs)
            sock = conn.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def resume(self) -> None:
        self._cancelled.clear()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self.parts.scheme == "https" else http.client.HTTPConnection
            conn = cls(self.parts.hostname, self.parts.port, timeout=self.timeout)
            self._local.conn = conn
            with self._lock:
                self._open.add(conn)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
            with self._lock:
                self._open.discard(conn)

    def _once(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Answer:
        """One exchange. A kept-alive connection the service has closed meanwhile (its idle timeout) is
        replaced at once, not counted as a try."""
        reused = getattr(self._local, "conn", None) is not None
        try:
            return self._exchange(method, path, body, headers)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            if not reused or self._cancelled.is_set():
                raise
        return self._exchange(method, path, body, headers)

    def _exchange(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Answer:
        conn = self._connection()
        try:
            conn.request(method, self.prefix + path, body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
        except BaseException:
            self._drop()
            raise
        if r.will_close:
            self._drop()
        return Answer(r.status, {k.lower(): v for k, v in r.getheaders()}, data)

    def wait_s(self, attempt: int, answer: Answer | None) -> float:
        """How long to wait before try ``attempt + 1``: ``Retry-After``, else exponential backoff with jitter."""
        after = retry_after(answer.headers.get("retry-after")) if answer is not None else None
        if after is None:
            after = self.backoff_s * (2 ** attempt) * (0.5 + random.random() / 2)
        return min(after, self.max_backoff_s)

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None) -> Answer:
        """The service's answer to ``method path``, after retries (see the module docstring)."""
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        where = f"{self.url}{path}"
        attempt = 0
        while True:
            answer, why = None, ""
            try:
                answer = self._once(method, path, body, headers)
            except (OSError, http.client.HTTPException) as e:  # refused, reset, timed out, cut short
                why = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            if answer is not None and answer.status not in RETRY_STATUSES:
                return _checked(answer, where)
            if answer is not None:
                why = f"{answer.status} {answer.reason()}"
            if attempt == self.retries or self._cancelled.is_set():
                tries = f"{self.retries + 1} {'try' if self.retries == 0 else 'tries'}"
                raise QuasarError(f"{where}: {why} (gave up after {tries})")
            self.sleep(self.wait_s(attempt, answer))
            attempt += 1

    def close(self) -> None:
        self._drop()
        with self._lock:
            conns, self._open = list(self._open), set()
        for conn in conns:
            conn.close()


def _checked(answer: Answer, where: str) -> Answer:
    if answer.status in (401, 403):
        raise QuasarError(f"{where}: {answer.status} {answer.reason()} (give the service's token with "
                          "--token-file, or token= in ServiceClient)")
    if answer.status == 404:
        raise QuasarError(f"{where}: 404 {answer.reason()} (is this a quasar serve address?)")
    return answer


def read_token_file(path: str) -> str:
    """The bearer token in ``path`` (its first line, stripped), or one QuasarError line."""
    try:
        with open(path, encoding="utf-8") as f:
            token = f.readline().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise QuasarError(f"--token-file {path}: cannot read it: {getattr(e, 'strerror', None) or e}") from None
    if not token:
        raise QuasarError(f"--token-file {path}: empty (the first line must hold the token)")
    if any(c.isspace() or not c.isprintable() for c in token):
        raise QuasarError(f"--token-file {path}: the token holds spaces or control characters")
    return token
