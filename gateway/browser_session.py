"""The H5 page's session: the same session as a Bearer client's (one row in
`sessions`, gateway.sessions), carried by a cookie instead of a header.

Why a cookie and not a token the page keeps: a script-readable token
(localStorage, sessionStorage, a JS variable) is one injected script away
from being copied off the device and used elsewhere for the session's whole
life. The cookie is `HttpOnly` (no script reads it), `SameSite=Strict` (no
other site's page makes the browser send it), `Path=/`, and `Secure` over
HTTPS. Because a browser sends it by itself, every write carried by the cookie
must also prove it comes from our page (`csrf_ok`): the `X-CSRF-Token` header,
a one-way function of the session token that only our page can read (from
GET /h5/session, same-origin JSON: no other origin may read it, we send no
CORS headers), and an `Origin`/`Sec-Fetch-Site` that, if sent, say our own
origin. Bodies must be `application/json` too (gateway.middlewares.body_guard),
which a cross-site form cannot send.

A request with an `Authorization` header is a Bearer client's and is treated
exactly as before; the cookie is read only when there is no such header.

The login's `state` (Alipay web authorization, gateway.h5) is a random value
kept in its own short-lived HttpOnly cookie (`SameSite=Lax`: Alipay's redirect
back is a cross-site top-level navigation, which Strict would not send it on),
checked against the `state` that comes back and deleted at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from aiohttp import web

from gateway.keys import SETTINGS

SESSION_COOKIE = "yztc_session"
STATE_COOKIE = "yztc_login_state"
CSRF_HEADER = "X-CSRF-Token"
STATE_SECONDS = 600  # time to pick a user on Alipay's page and come back
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_token(session_token: str) -> str:
    """The CSRF token of a session (64 hex): SHA-256 of the session token
    under its own label, so it is neither the token nor its stored id."""
    return hashlib.sha256(b"yztc-h5-csrf\x00" + session_token.encode()).hexdigest()


def new_state() -> str:
    """A fresh login `state` (43 URL-safe characters, 256 bits)."""
    return secrets.token_urlsafe(32)


def states_match(sent: str | None, returned: str | None) -> bool:
    """Whether the `state` that came back is the one this browser was sent with."""
    if not sent or not returned:
        return False
    return hmac.compare_digest(sent.encode(), returned.encode())


def _secure(request: web.Request) -> bool:
    setting = request.app[SETTINGS].h5_secure_cookies
    return request.secure if setting is None else setting


def own_origin(request: web.Request) -> str:
    """The gateway's origin as the browser sees it (scheme://host[:port]):
    the setting's if given (behind a proxy), else the request's."""
    configured = request.app[SETTINGS].h5_public_origin
    return configured.rstrip("/") if configured else f"{request.scheme}://{request.host}"


def set_session_cookie(request: web.Request, response: web.StreamResponse, token: str, seconds: int) -> None:
    response.set_cookie(
        SESSION_COOKIE, token, max_age=seconds, path="/", httponly=True, samesite="Strict", secure=_secure(request)
    )


def clear_session_cookie(request: web.Request, response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Strict", secure=_secure(request))


def set_state_cookie(request: web.Request, response: web.StreamResponse, state: str) -> None:
    response.set_cookie(
        STATE_COOKIE, state, max_age=STATE_SECONDS, path="/h5/", httponly=True, samesite="Lax", secure=_secure(request)
    )


def clear_state_cookie(request: web.Request, response: web.StreamResponse) -> None:
    response.del_cookie(STATE_COOKIE, path="/h5/", httponly=True, samesite="Lax", secure=_secure(request))


def cookie_token(request: web.Request) -> str | None:
    """The session token from the cookie, for a request with no Authorization header."""
    if "Authorization" in request.headers:
        return None
    return request.cookies.get(SESSION_COOKIE) or None


def csrf_ok(request: web.Request, session_token: str) -> bool:
    """Whether a cookie-carried request may act: reads always; writes only
    with the session's CSRF header and, where the browser says where the
    request comes from, from our own origin."""
    if request.method in _SAFE_METHODS:
        return True
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site != "same-origin":
        return False
    origin = request.headers.get("Origin")
    if origin is not None and origin != own_origin(request):
        return False
    given = request.headers.get(CSRF_HEADER, "")
    return hmac.compare_digest(given.encode(), csrf_token(session_token).encode())
