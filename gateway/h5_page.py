"""The citizen's H5 page (CONTRACT `GET /`): the page, its static assets under
/h5/, and its login by Alipay's web authorization.

    GET /                 the page (gateway/h5/index.html), under PAGE_CSP
    GET /h5/<file>        its CSS and ES modules, from memory, with an ETag
                          (HEAD for both as well: uptime checks and caches ask
                          with HEAD; RFC 9110 section 9.3.2)
    GET /h5/login         302 to Alipay's publicAppAuthorize.htm (app_id,
                          scope=auth_base, redirect_uri=<origin>/h5/callback,
                          state), the state kept in an HttpOnly cookie
    GET /h5/callback      ?auth_code&state from Alipay: the state checked, the
                          code exchanged (handlers.open_session, the same as
                          POST /api/v1/sessions), the session set as a cookie,
                          303 to `/` (the code leaves the address bar at once)
    GET /h5/session       200 {"csrf_token"} for a live cookie session, else 401
    POST /h5/logout       ends the cookie session (CSRF-guarded), 204

Why the code is exchanged here and not by the page's script: the answer of
POST /api/v1/sessions carries the token, which the page must never hold
(gateway.browser_session says why). A failed login comes back as
`/?login=failed|limited|unavailable`: never the code, the state or a reason
that quotes either. The access log has the route, never the query string.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from aiohttp import web

from gateway import handlers
from gateway.auth import authenticated
from gateway.browser_session import (
    STATE_COOKIE,
    clear_session_cookie,
    clear_state_cookie,
    cookie_token,
    csrf_token,
    new_state,
    own_origin,
    set_session_cookie,
    set_state_cookie,
    states_match,
)
from gateway.enterprise_directory import etag_matches
from gateway.json_answers import json_answer
from gateway.keys import SESSIONS, SETTINGS
from yztc.errors import ServiceError

log = logging.getLogger("gateway")

ASSETS_DIR = Path(__file__).with_name("h5")
CALLBACK_PATH = "/h5/callback"

# Only our own origin, and nothing inline: every script and style is a file.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml", ".html": "text/html"}
# An auth code as Alipay writes them; anything else is not tried.
_MAX_CODE_LENGTH = 256


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def load_assets(folder: Path = ASSETS_DIR) -> dict[str, Asset]:
    """The page's files by name, read once at start (a few tens of KiB)."""
    assets = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix in _TYPES:
            body = path.read_bytes()
            assets[path.name] = Asset(body, _TYPES[path.suffix], f'"{hashlib.sha256(body).hexdigest()[:20]}"')
    return assets


ASSETS = load_assets()


def _static(request: web.Request, asset: Asset, extra_headers: dict[str, str]) -> web.Response:
    # Public files, the same for everyone: revalidated, never personal.
    headers = {"ETag": asset.etag, "Cache-Control": "no-cache", **extra_headers}
    if etag_matches(",".join(request.headers.getall("If-None-Match", [])), asset.etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=asset.body, content_type=asset.content_type, charset="utf-8", headers=headers)


async def page(request: web.Request) -> web.Response:
    return _static(request, ASSETS["index.html"], {"Content-Security-Policy": PAGE_CSP})


async def asset(request: web.Request) -> web.Response:
    found = ASSETS.get(request.match_info["name"])
    if found is None or found.content_type == "text/html":
        raise ServiceError("NOT_FOUND")
    return _static(request, found, {})


# Served from memory with no database work: not counted against the client's
# address (gateway.middlewares.limit_per_client), like the probes.
page.unlimited = asset.unlimited = True  # type: ignore[attr-defined]


async def login(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    state = new_state()
    query = urlencode(
        {
            "app_id": settings.alipay_app_id,
            "scope": "auth_base",
            "redirect_uri": own_origin(request) + CALLBACK_PATH,
            "state": state,
        }
    )
    response = web.Response(status=302, headers={"Location": f"{settings.authorize_url}?{query}"})
    set_state_cookie(request, response, state)
    return response


async def callback(request: web.Request) -> web.Response:
    auth_code = request.query.get("auth_code", "")
    outcome = "failed"
    token_and_ttl = None
    if (
        states_match(request.cookies.get(STATE_COOKIE), request.query.get("state"))
        and 0 < len(auth_code) <= _MAX_CODE_LENGTH
    ):
        try:
            token_and_ttl = await handlers.open_session(request, auth_code)
        except ServiceError as error:
            outcome = {"RATE_LIMITED": "limited", "UNAVAILABLE": "unavailable"}.get(error.code, "failed")
    location = "/" if token_and_ttl else f"/?login={outcome}"
    response = web.Response(status=303, headers={"Location": location})
    clear_state_cookie(request, response)  # a state is good for one return only
    if token_and_ttl:
        set_session_cookie(request, response, *token_and_ttl)
    else:
        log.info("h5 login refused", extra={"fields": {"outcome": outcome}})
    return response


async def session(request: web.Request) -> web.Response:
    token = cookie_token(request)
    if token is None or await request.app[SESSIONS].lookup(token) is None:
        raise ServiceError("UNAUTHENTICATED")
    return json_answer({"csrf_token": csrf_token(token)})


@authenticated
async def logout(request: web.Request) -> web.Response:
    token = cookie_token(request)
    if token is None:  # a Bearer client's session ends only when it expires
        raise ServiceError("UNAUTHENTICATED")
    await request.app[SESSIONS].delete(token)
    response = web.Response(status=204)
    clear_session_cookie(request, response)
    return response


# (method, path, handler). The page and its login are for browsers, not the
# JSON API that /api/v1/openapi.json describes, and are not in that document.
ROUTES = (
    ("GET", "/", page),
    ("HEAD", "/", page),
    ("GET", "/h5/login", login),
    ("GET", CALLBACK_PATH, callback),
    ("GET", "/h5/session", session),
    ("POST", "/h5/logout", logout),
    ("GET", "/h5/{name}", asset),  # last: the names above are not files
    ("HEAD", "/h5/{name}", asset),
)


def add_routes(app: web.Application) -> None:
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
