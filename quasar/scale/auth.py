"""Who may use the scoring service: bearer tokens, and where it may listen without them (no Ray, no web framework).

Tokens are read from a file (``--token-file``: one a line; blank lines and ``#`` comments skipped, so a
second token can be added before the first is retired). Only their SHA-256 digests are kept and handed
to the replicas, so the tokens never travel in Ray's deployment arguments; a request's token is hashed
and compared with each digest by :func:`hmac.compare_digest` (constant time, every digest compared).
A refused request gets 401 ``{"error": "unauthorized"}``, the same whether the token is missing,
malformed or wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket

from quasar.errors import QuasarError

UNAUTHORIZED = "unauthorized"
OPEN_PATHS = frozenset({"/healthz", "/readyz"})  # probes carry no token; they say nothing but up/ready


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def read_token_digests(path: str) -> tuple[str, ...]:
    """The digests of the tokens in ``path``, or QuasarError (one line) when it cannot be read or holds none."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise QuasarError(f"--token-file {path}: cannot read it ({getattr(e, 'strerror', None) or e})") from None
    tokens = [t.strip() for t in lines if t.strip() and not t.lstrip().startswith("#")]
    if not tokens:
        raise QuasarError(f"--token-file {path}: no token in it (one a line)")
    if any(len(t) < 16 or any(c.isspace() for c in t) for t in tokens):
        raise QuasarError(f"--token-file {path}: each token must be at least 16 characters without spaces "
                          "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return tuple(digest(t) for t in tokens)


def authorized(header: str | None, digests: tuple[str, ...]) -> bool:
    """Whether an ``Authorization`` header carries one of the tokens (always, when there are none)."""
    if not digests:
        return True
    scheme, _, token = (header or "").partition(" ")
    given = digest(token.strip() if scheme.lower() == "bearer" else "")
    ok = False
    for d in digests:  # no early exit: the time does not depend on which token matched
        ok |= hmac.compare_digest(given, d)
    return ok and scheme.lower() == "bearer" and bool(token.strip())


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` binds to is a loopback one (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0].split("%", 1)[0]).is_loopback for i in infos)


def check_exposure(host: str, has_token: bool, insecure: bool) -> None:
    """QuasarError unless the service is on loopback, has tokens, or the user said ``--insecure``."""
    if has_token or insecure or is_loopback(host):
        return
    raise QuasarError(f"quasar serve: --host {host} is reachable from other machines and no --token-file is "
                      "given; give one (clients send Authorization: Bearer TOKEN), or --insecure to serve "
                      "without authentication")
