"""Who a request is, for the handlers and the rate limits: the Bearer
session a route needs (`authenticated`) and the client address as a
rate-limit event (`address_claim`).

Kept apart from sessions.py (the store) and middlewares.py (which counts
addresses for routes without a session), which both need it.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.browser_session import cookie_token, csrf_ok
from gateway.keys import CLIENT, RATE_LIMITER, SESSION_ID, SESSIONS, SETTINGS, USER_ID
from gateway.rate_limits import Claim
from gateway.sessions import session_id
from yztc.errors import ServiceError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def address_claim(request: web.Request) -> Claim:
    """The request as an event of its client address (request[CLIENT])."""
    return Claim("ip_requests", request.app[SETTINGS].limit_ip_requests, request[CLIENT])


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def presented_token(request: web.Request) -> str | None:
    """The session token the request carries: its Bearer token, else (the
    H5 page) its session cookie's."""
    return _bearer(request) or cookie_token(request)


def needs_session(handler: object) -> bool:
    """Whether `handler` (a route's) was wrapped by `authenticated`."""
    return getattr(handler, "needs_session", False)


def authenticated(handler: Handler) -> Handler:
    """Requires `Authorization: Bearer <token>` of a live session (or, from
    the H5 page and only without an Authorization header, the session cookie
    with its CSRF guard on writes: gateway.browser_session); puts the
    user's key (gateway.alipay_login: the Alipay id the session was made
    for) in request[USER_ID] and the session's id in request[SESSION_ID].
    Counts the request against its client address's limit and the user's,
    both in one insert (see middlewares.limit_per_client); a request without
    a session against its address's alone. UNAUTHENTICATED without a live
    session."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        limiter = request.app[RATE_LIMITER]
        token = _bearer(request)
        from_cookie = token is None and (token := cookie_token(request)) is not None
        user_id = await request.app[SESSIONS].lookup(token) if token else None
        if token is None or user_id is None or (from_cookie and not csrf_ok(request, token)):
            await limiter.claim(address_claim(request))
            raise ServiceError("UNAUTHENTICATED")
        request[USER_ID] = user_id
        request[SESSION_ID] = session_id(token)
        user_limit = request.app[SETTINGS].limit_user_requests
        await limiter.claim(address_claim(request), Claim("user_requests", user_limit, user_id))
        return await handler(request)

    wrapper.needs_session = True  # type: ignore[attr-defined]
    return wrapper
