"""The scoring service's HTTP API: a FastAPI app in front of one :class:`~quasar.scale.service.ScoringService`
(no Ray here: :mod:`quasar.scale.serve` mounts it as Ray Serve's ingress; tests run it on uvicorn).

Endpoints: ``POST /score``, ``GET /healthz`` (the replica answers), ``GET /readyz`` (its model is loaded
and, on Ray Serve, the app has a running replica), ``GET /metadata``, ``GET /metrics`` (Prometheus), and
the schema at ``/openapi.json`` with interactive docs at ``/docs``. Bodies are read by
:func:`quasar.scale.http.read_body` from the request stream, a multipart one part by part
(:mod:`quasar.scale.multipart`), with the limits of :mod:`quasar.scale.http` applied while reading; every
refusal is ``{"error": one line}`` with the status of that module's table.

Every request passes :class:`Front` first: it takes the request id (Ray Serve's proxy sets
``X-Request-Id``; a client may send its own; else one is made), checks the bearer token
(:mod:`quasar.scale.auth`; ``/healthz`` and ``/readyz`` are open), counts the request in the metrics and
writes one JSON access-log line. CORS is off unless origins are given.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Callable

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from quasar.scale.auth import OPEN_PATHS, UNAUTHORIZED, authorized
from quasar.scale.http import (
    RequestError,
    body_kind,
    check_length,
    check_request_pixels,
    one_image,
    read_body,
    record_json,
    truthy,
)
from quasar.scale.metrics import access_line, access_logger
from quasar.scale.multipart import MultipartReader

log = logging.getLogger("quasar.serve")
REQUEST_ID = "x-request-id"
_ID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
ENDPOINTS_LINE = "POST /score, GET /healthz, GET /readyz, GET /metadata, GET /metrics, GET /docs"


# ---------------------------------------------------------------- request and response models (the schema)
class ScoreResult(BaseModel):
    """One image's answer: P(good) per head, higher is better."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"scores": {"quality": 0.83, "aesthetics": 0.61}}]})
    scores: dict[str, float] = Field(description="P(good) per head, in [0, 1]")
    margins: dict[str, float] | None = Field(None, description="per head, with ?margins=1")
    warning: str | None = Field(None, description="scored, but something about the image is unusual")


class PartResult(BaseModel):
    """One part of a multipart request: its scores, or why it could not be scored."""

    name: str = Field(description="the part's filename, else its field name")
    scores: dict[str, float] | None = None
    margins: dict[str, float] | None = None
    warning: str | None = None
    error: str | None = Field(None, description="the decoder's reason (the other parts are still scored)")


class MultiResult(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"results": [
        {"name": "a.jpg", "scores": {"quality": 0.83, "aesthetics": 0.61}},
        {"name": "b.png", "error": "not an image: starts with b'%PDF-1.4'"}]}]})
    results: list[PartResult]


class ErrorBody(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"error": "empty body: send one image as the body, "
                                                                       "or several as multipart/form-data"}]})
    error: str = Field(description="one line: why the request was refused")


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Replicas(BaseModel):
    running: int = Field(description="replicas of the deployment answering now")
    total: int = Field(description="replicas in any state (starting, updating, stopping, running)")


class Ready(BaseModel):
    status: str = Field(examples=["ready"], description="ready, or why not")
    replicas: Replicas | None = Field(None, description="the app's replicas on Ray Serve (None elsewhere)")


class Metadata(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    heads: list[str]
    precision: str | None = None


_BINARY = {"type": "string", "format": "binary"}
SCORE_BODY = {
    "required": True,
    "description": "One image as the body (its own Content-Type, application/octet-stream, or "
                   "application/x-www-form-urlencoded when the bytes are an image: curl --data-binary's default), "
                   "or several as multipart/form-data, one file per part.",
    "content": {
        "image/jpeg": {"schema": _BINARY, "example": "<the bytes of photo.jpg>"},
        "image/png": {"schema": _BINARY},
        "application/octet-stream": {"schema": _BINARY},
        "multipart/form-data": {
            "schema": {"type": "object", "properties": {"files": {"type": "array", "items": _BINARY}}},
            "example": {"files": ["<a.jpg>", "<b.png>"]}},
    },
}


def _error_doc(what: str, example: str) -> dict:
    return {"model": ErrorBody, "description": what,
            "content": {"application/json": {"example": {"error": example}}}}


SCORE_RESPONSES = {
    200: {"description": "one image: ScoreResult; multipart: MultiResult (each part scored or its error)",
          "model": ScoreResult | MultiResult,
          "content": {"application/json": {
              "examples": {
                  "one image": {"value": {"scores": {"quality": 0.83, "aesthetics": 0.61}}},
                  "multipart": {"value": {"results": [
                      {"name": "a.jpg", "scores": {"quality": 0.83, "aesthetics": 0.61}},
                      {"name": "b.png", "error": "not an image: starts with b'%PDF-1.4'"}]}}}}}},
    400: _error_doc("empty body, not an image, truncated, decompression bomb, too many files, malformed multipart",
                    "truncated JPEG: the data ends before the image does"),
    401: _error_doc("no or wrong bearer token (when the service has tokens)", UNAUTHORIZED),
    408: _error_doc("body not in within the read timeout (Retry-After)",
                    "request body not received within 30 s (the service's read timeout)"),
    413: _error_doc("body over --max-body-mb, or the images' pixels over --max-request-pixels",
                    "request body over 33554432 bytes (the service's --max-body-mb limit)"),
    415: _error_doc("another content type", "unsupported content type 'application/json': send an image"),
    503: _error_doc("too many slow bodies at once (Retry-After)", "busy: too many request bodies arriving slowly"),
}


# ---------------------------------------------------------------- the app
def build_api(service, *, replicas: Callable[[], dict | None] | None = None, echo_request_id: bool = True) -> FastAPI:
    """The FastAPI app for ``service``. ``replicas()`` gives ``{"running", "total"}`` for ``/readyz``
    (on Ray Serve); ``echo_request_id=False`` where a proxy in front already returns ``X-Request-Id``."""
    api = FastAPI(title="QUASAR scoring service", version="1",
                  description="Image quality scores from a fused QUASAR model (docs/scaling.md, 'The scoring service').")
    o = service.options

    @api.post("/score", summary="Score one image, or several as multipart/form-data",
              openapi_extra={"requestBody": SCORE_BODY}, responses=SCORE_RESPONSES, response_model=None)
    async def score(request: Request, margins: str | None = Query(
            None, description="1, true, yes or on: add each head's margin", examples=["1"])):
        try:
            return await _score(request, truthy(margins))
        except RequestError as e:
            return _error(e)
        except ClientDisconnect:  # nobody to answer
            return JSONResponse({"error": "client disconnected"}, status_code=400)
        except Exception as e:  # a bug here, not the client's input: say so, keep the replica up
            log.exception("quasar serve: internal error")
            return JSONResponse({"error": f"internal error: {type(e).__name__}: {e}"}, status_code=500)

    async def _score(request: Request, margins: bool) -> JSONResponse:
        limits, ctype = o.limits, request.headers.get("content-type")
        check_length(request.headers.get("content-length"), limits)
        multipart = body_kind(ctype) == "multipart"
        if multipart:
            reader = MultipartReader(ctype or "", limits)
            await read_body(request.stream(), limits, service.slow_reads, sink=reader.feed)
            files = reader.finish()  # the pixel budget was applied part by part
        else:
            files = one_image(ctype, await read_body(request.stream(), limits, service.slow_reads))
            check_request_pixels(files, limits)
        request.state.images = len(files)
        records = await service.score_files(request.client.host if request.client else "", files)
        if multipart:
            results = MultiResult(results=[PartResult(name=name, **record_json(r, margins))
                                           for (name, _), r in zip(files, records, strict=True)])
            return JSONResponse(results.model_dump(exclude_none=True))
        (rec,) = records
        if not rec.ok:
            return JSONResponse(ErrorBody(error=rec.error).model_dump(), status_code=400)
        return JSONResponse(ScoreResult(**record_json(rec, margins)).model_dump(exclude_none=True))

    @api.get("/healthz", response_model=Health, summary="The replica answers (liveness)")
    async def healthz():
        return {"status": "ok"}

    @api.get("/readyz", response_model=Ready, summary="Ready to score: model loaded (and, on Ray Serve, replicas up)",
             responses={503: {"model": Ready, "description": "not ready, and why"}})
    async def readyz():
        why = service.not_ready()
        counts = await _replica_counts(replicas)
        if why is None and counts is not None and counts.get("running", 0) < 1:
            why = "no replica running"
        body = {"status": why and f"not ready: {why}" or "ready", "replicas": counts}
        return JSONResponse(body, status_code=503 if why else 200)

    @api.get("/metadata", response_model=Metadata, summary="Model, heads, preprocessing, batching, limits, stats")
    async def metadata():
        return JSONResponse(service.metadata_now())

    @api.get("/metrics", summary="Prometheus metrics of the answering replica", response_class=Response,
             responses={200: {"content": {"text/plain": {"example": "quasar_images_scored_total{...} 12.0"}}}})
    async def metrics():
        return Response(service.metrics.render(), media_type=service.metrics.content_type)

    _add_error_handlers(api)
    _add_middleware(api, service, echo_request_id)
    return api


def _add_error_handlers(api: FastAPI) -> None:
    """404/405 and validation errors as the service's one-line ``{"error": ...}`` answers."""
    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 404:
            reason = f"no endpoint {request.url.path!r}: {ENDPOINTS_LINE}"
        elif exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            reason = f"{request.method} not allowed here: use {allowed.replace(', ', ' or ') or 'another method'}"
        else:
            reason = str(exc.detail).splitlines()[0] if exc.detail else f"HTTP {exc.status_code}"
        return JSONResponse({"error": reason}, status_code=exc.status_code, headers=exc.headers)

    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = (exc.errors() or [{}])[0]
        where = ".".join(str(x) for x in first.get("loc", ()))
        return JSONResponse({"error": f"bad request: {where}: {first.get('msg', 'invalid')}"}, status_code=400)



def _add_middleware(api: FastAPI, service, echo_request_id: bool) -> None:
    """The front (auth, request id, access log, metrics) and, when asked, CORS outside it."""
    o = service.options
    api.add_middleware(Front, service=service, echo_request_id=echo_request_id)
    if o.cors_origins:  # added last: outermost, so a browser's preflight needs no token
        from starlette.middleware.cors import CORSMiddleware

        api.add_middleware(CORSMiddleware, allow_origins=list(o.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "X-Request-Id"],
                           expose_headers=["X-Request-Id"])


async def _replica_counts(replicas: Callable[[], dict | None] | None) -> dict | None:
    if replicas is None:
        return None
    try:
        return await asyncio.wait_for(asyncio.to_thread(replicas), 5)
    except Exception:  # Serve's controller busy or gone: the replica still knows about itself
        return None


def _error(e: RequestError) -> JSONResponse:
    return JSONResponse({"error": e.reason}, status_code=e.status, headers=e.headers)


class Front:
    """Pure ASGI middleware around the app: request id, bearer token, metrics, one JSON access-log line."""

    def __init__(self, app, service, echo_request_id: bool) -> None:
        self.app, self.echo = app, echo_request_id
        self.tokens = service.options.token_digests
        self.metrics = service.metrics
        self.log = access_logger(service.options.access_log)

    async def __call__(self, scope, receive, send) -> None:
        app = self.app
        if scope["type"] != "http":
            return await app(scope, receive, send)
        start = time.perf_counter()
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
                   if k in (b"x-request-id", b"authorization")}
        rid = headers.get(REQUEST_ID, "")
        given = bool(rid)
        if not _ID_OK.match(rid):
            rid = uuid.uuid4().hex
        path = scope.get("path", "")
        status = {"code": 500}
        state = scope.setdefault("state", {})

        done = False

        def finish() -> None:  # once per request: before its last byte is sent (or when it failed)
            nonlocal done
            if done:
                return
            done = True
            self.metrics.in_flight.dec()
            seconds = time.perf_counter() - start
            self.metrics.request(path.rstrip("/") or "/", status["code"], seconds)
            client = scope.get("client")
            self.log.info(access_line(
                ts=round(time.time(), 3), request_id=rid, method=scope.get("method"), path=path,
                status=status["code"], ms=round(seconds * 1000, 2), images=state.get("images"),
                client=client[0] if client else None, replica=self.metrics.replica))

        async def send_wrapped(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                if self.echo or not given:
                    message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode("latin-1"))]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                finish()  # counted and logged before the client can see the answer (and ask /metrics)
            await send(message)

        self.metrics.in_flight.inc()
        try:
            if path not in OPEN_PATHS and not authorized(headers.get("authorization"), self.tokens):
                body = b'{"error":"' + UNAUTHORIZED.encode() + b'"}'
                await send_wrapped({"type": "http.response.start", "status": 401, "headers": [
                    (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b"Bearer")]})
                await send_wrapped({"type": "http.response.body", "body": body})
                return
            await app(scope, receive, send_wrapped)
        finally:
            finish()
