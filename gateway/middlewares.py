"""Cross-cutting request handling: request id and access log, the CONTRACT
error shape for every failure, the per-client rate limit, body limits and
media type, security headers.

Order (outermost first): request_context sees the final status of every
answer, error_shape turns anything raised into the CONTRACT's JSON,
limit_per_client refuses a client over its limit before any other work,
and body_guard rejects bodies before a handler reads them.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import traceback
import uuid

from aiohttp import web
from opentelemetry import context as otel_context
from opentelemetry import trace

from gateway.auth import address_claim, needs_session
from gateway.client_address import client_subject
from gateway.json_answers import json_answer
from gateway.keys import CLIENT, RATE_LIMITER, REQUEST_ID, SETTINGS, TRUSTED_PROXIES
from yztc.errors import ServiceError
from yztc.telemetry import tracer

log = logging.getLogger("gateway")
access_log = logging.getLogger("gateway.access")

# A caller's id is echoed and logged, so only a short, plain token is taken
# as is; anything else (log injection, personal data) is replaced.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Probes come from the orchestrator, many times a minute: never limited, so
# a flood cannot make a healthy replica look dead.
_UNLIMITED_PATHS = frozenset({"/healthz", "/readyz"})

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    # Answers are personal (query results, tokens): never stored on the way.
    "Cache-Control": "no-store",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


def error_response(error: ServiceError) -> web.Response:
    response = json_answer(error.to_json(), status=error.kind.http)
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    if error.kind.http == 401:
        response.headers["WWW-Authenticate"] = "Bearer"  # RFC 6750
    return response


def _route_pattern(request: web.Request) -> str:
    """The route's template (/api/v1/queries/{query_id}), never the raw path:
    paths carry ids, and unknown paths are whatever a scanner sent."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(unmatched)"


@web.middleware
async def request_context(request: web.Request, handler) -> web.StreamResponse:
    given = request.headers.get("X-Request-Id", "")
    request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    status = 499  # stays so only if the client went away mid-request
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = request_id
        return response
    finally:
        # No bodies, no query strings, no raw paths: they may hold personal data.
        access_log.info(
            "request",
            extra={
                "fields": {
                    "method": request.method,
                    "route": _route_pattern(request),
                    "status": status,
                    "ms": round((time.perf_counter() - started) * 1000, 1),
                    "request_id": request_id,
                }
            },
        )


_HTTP_CODES = {
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    401: "UNAUTHENTICATED",
}


def where_raised(error: BaseException) -> str:
    """file:line of the innermost frame: enough to find the bug, while the
    exception's text (which may quote a body or an answer) stays out of logs."""
    frames = traceback.extract_tb(error.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"


@web.middleware
async def error_shape(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ServiceError as error:
        return error_response(error)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(ServiceError(_HTTP_CODES.get(exc.status, "INVALID_ARGUMENT")))
        if isinstance(exc, web.HTTPMethodNotAllowed):
            response.headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
        return response
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        # Never a 500 and never a stack trace to the client.
        log.error(
            "unexpected error",
            extra={
                "fields": {
                    "request_id": request[REQUEST_ID],
                    "error": type(exc).__name__,
                    "where": where_raised(exc),
                }
            },
        )
        return error_response(ServiceError("UNAVAILABLE"))


@web.middleware
async def limit_per_client(request: web.Request, handler) -> web.StreamResponse:
    """Every request but the probes and the H5 page's static files (served
    from memory, gateway.h5_page) counts against its client address's limit.

    For routes that need a session the address is counted by `authenticated`
    together with the user, in one insert after the session look-up; here
    it is only refused if already known to be over its limit (no database).
    """
    app = request.app
    request[CLIENT] = client_subject(
        request.remote, request.headers.getall("X-Forwarded-For", []), app[TRUSTED_PROXIES]
    )
    if request.path in _UNLIMITED_PATHS or getattr(request.match_info.handler, "unlimited", False):
        return await handler(request)
    try:
        if needs_session(request.match_info.handler):
            app[RATE_LIMITER].refuse_if_exhausted(address_claim(request))
        else:
            await app[RATE_LIMITER].claim(address_claim(request))
        return await handler(request)
    except ServiceError as error:
        if error.code == "RATE_LIMITED" and error.metadata.get("limit") == "ip_requests":
            await asyncio.sleep(app[SETTINGS].limit_refusal_delay_seconds)
        raise


@web.middleware
async def body_guard(request: web.Request, handler) -> web.StreamResponse:
    """413 before reading when Content-Length says so (chunked bodies are cut
    by client_max_size in read()), then JSON only."""
    if request.method in _BODY_METHODS and request.match_info.http_exception is None:
        limit = request.app[SETTINGS].max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise ServiceError("PAYLOAD_TOO_LARGE")
        charset = request.charset
        if request.content_type != "application/json" or (
            charset is not None and charset.lower().replace("-", "") != "utf8"
        ):
            raise ServiceError("UNSUPPORTED_MEDIA_TYPE")
    return await handler(request)


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: reaches every answer of the app, aiohttp's 404 and 405
    included; the HTTP parser's refusals get them in gateway.http_protocol."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


@web.middleware
async def trace_request(request: web.Request, handler) -> web.StreamResponse:
    """A root SERVER span per request: the head of the query's trace, sampled
    at YZTC_TRACES_SAMPLE_RATIO. Installed only when tracing is on
    (`create_app`); probes are not traced. A caller's `traceparent` is
    ignored: the gateway faces the internet, and a client must not choose
    which requests we record."""
    if request.path in _UNLIMITED_PATHS:
        return await handler(request)
    route = _route_pattern(request)
    with tracer().start_as_current_span(
        f"{request.method} {route}",
        context=otel_context.Context(),  # always a root
        kind=trace.SpanKind.SERVER,
        attributes={"http.request.method": request.method, "http.route": route},
    ) as span:
        response = await handler(request)
        if span.is_recording():
            span.set_attribute("http.response.status_code", response.status)
        return response


MIDDLEWARES = (request_context, error_shape, limit_per_client, body_guard)
