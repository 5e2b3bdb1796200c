"""HTTP handlers: translate JSON to calls and answers back; nothing else.
Validation lives in request_bodies, rules in the aggregator, limits in
rate_limits (claimed here where only the handler knows the event)."""

from __future__ import annotations

from aiohttp import web

from gateway import request_bodies
from gateway.auth import authenticated, presented_token
from gateway.browser_session import clear_session_cookie
from gateway.client_address import wider_prefixes
from gateway.enterprise_directory import etag_matches
from gateway.json_answers import dumps, json_answer
from gateway.keys import (
    AGGREGATOR,
    ALIPAY,
    CLIENT,
    ENTERPRISES,
    PHONE_AUTHORISATION,
    RATE_LIMITER,
    READINESS,
    SESSION_ID,
    SESSIONS,
    SETTINGS,
    USER_ID,
)
from gateway.openapi import OPENAPI
from gateway.rate_limits import Claim
from gateway.request_bodies import (
    PhoneNumberRequest,
    QueryRequest,
    SessionRequest,
    VerificationCodeRequest,
)
from yztc.errors import ServiceError


def login_claims(request: web.Request) -> list[Claim]:
    """A login as an event of its client address (L2): the address (an IPv6
    client's /64), and an IPv6 client's /56 and /48, each with its own limit."""
    settings = request.app[SETTINGS]
    client = request[CLIENT]
    claims = [Claim("ip_logins", settings.limit_ip_logins, client)]
    wider = wider_prefixes(client)
    if wider:
        claims.append(Claim("ip56_logins", settings.limit_ip56_logins, wider[56]))
        claims.append(Claim("ip48_logins", settings.limit_ip48_logins, wider[48]))
    return claims


async def open_session(request: web.Request, auth_code: str) -> tuple[str, int]:
    """A new session for the Alipay user behind `auth_code`: (token, seconds
    it lasts). The one way in, for POST /api/v1/sessions and the H5 page's
    login (gateway.h5_page); UNAUTHENTICATED, RATE_LIMITED or UNAVAILABLE.
    The client address's login limits are claimed first: a refused login
    costs no Alipay call."""
    app = request.app
    await app[RATE_LIMITER].claim(*login_claims(request))
    user_id = await app[ALIPAY].user_key(auth_code)
    settings = app[SETTINGS]
    await app[RATE_LIMITER].claim(
        Claim("user_requests", settings.limit_user_requests, user_id),
        Claim("user_sessions", settings.limit_user_sessions, user_id),
    )
    return await app[SESSIONS].create(user_id)


async def create_session(request: web.Request) -> web.Response:
    form = await request_bodies.read(request, SessionRequest)
    token, expires_in = await open_session(request, form.auth_code)
    return json_answer({"token": token, "expires_in": expires_in})


@authenticated
async def end_session(request: web.Request) -> web.Response:
    """DELETE /api/v1/sessions (CONTRACT): 204, and the token is dead; a
    cookie session's cookie is cleared too."""
    token = presented_token(request)
    assert token is not None  # authenticated found one
    await request.app[SESSIONS].delete(token)
    response = web.Response(status=204)
    if _bearer_less(request):
        clear_session_cookie(request, response)
    return response


def _bearer_less(request: web.Request) -> bool:
    return not request.headers.get("Authorization")


@authenticated
async def phone_number(request: web.Request) -> web.Response:
    form = await request_bodies.read(request, PhoneNumberRequest)
    phone = request.app[PHONE_AUTHORISATION].phone(form.response, form.sign)
    return json_answer({"phone": phone})


@authenticated
async def request_verification_code(request: web.Request) -> web.Response:
    form = await request_bodies.read(request, VerificationCodeRequest)
    settings = request.app[SETTINGS]
    # Only a well-formed request counts against the code limits.
    await request.app[RATE_LIMITER].claim(
        Claim("session_codes", settings.limit_session_codes, request[SESSION_ID]),
        Claim("ip_codes", settings.limit_ip_codes, request[CLIENT]),
    )
    answer = await request.app[AGGREGATOR].request_code(form.phone, request[USER_ID])
    return json_answer(answer, status=202)


@authenticated
async def submit_query(request: web.Request) -> web.Response:
    form = await request_bodies.read(request, QueryRequest)
    answer = await request.app[AGGREGATOR].submit_query(form.phone, form.id_last6, form.code, request[USER_ID])
    return json_answer(answer, status=202)


@authenticated
async def get_query(request: web.Request) -> web.Response:
    query_id = request_bodies.query_id(request)
    return json_answer(await request.app[AGGREGATOR].get_query(query_id, request[USER_ID]))


async def list_enterprises(request: web.Request) -> web.Response:
    directory = await request.app[ENTERPRISES].get()
    headers = {
        "ETag": directory.etag,
        # Public data, the same for everyone: caches on the way may keep it.
        "Cache-Control": f"public, max-age={request.app[SETTINGS].enterprises_cache_seconds}",
    }
    if etag_matches(",".join(request.headers.getall("If-None-Match", [])), directory.etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=directory.body, content_type="application/json", charset="utf-8", headers=headers)


_OPENAPI_BODY = dumps(OPENAPI).encode("utf-8")  # ~20 KiB: serialised once


async def openapi_document(request: web.Request) -> web.Response:
    return web.Response(body=_OPENAPI_BODY, content_type="application/json", charset="utf-8")


async def healthz(request: web.Request) -> web.Response:
    return json_answer({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    if not await request.app[READINESS].ready():
        raise ServiceError("UNAVAILABLE")
    return json_answer({"status": "ready"})
