"""The H5 page's login and cookie session (gateway.h5_page,
gateway.browser_session) against the Alipay simulator's web authorization,
with sessions in a real FerretDB: state checked, code exchanged once, the
token only in an HttpOnly SameSite=Strict cookie, writes CSRF-guarded, and
Bearer clients untouched. The page itself is tested in a browser
(tests/e2e/test_h5_browser.py)."""

from __future__ import annotations

import logging
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp.test_utils import TestClient

from gateway.browser_session import CSRF_HEADER, SESSION_COOKIE, STATE_COOKIE
from simulators.scenario import parse_scenario
from tests.integration.gateways import APP_ID, Gateways, bearer
from tests.integration.test_gateway_alipay_login import OwnerAggregator

USER = "2088000000000001"
SCENARIO = parse_scenario({"alipay": {"auth_codes": {"demo-auth-code": USER}}})


def _cookies(response) -> dict[str, object]:
    jar = SimpleCookie()
    for header in response.headers.getall("Set-Cookie", []):
        jar.load(header)
    return dict(jar)


@pytest.fixture
async def h5(gateways: Gateways):
    """(gateway, simulator, aggregator): a gateway whose Alipay is the
    simulator and whose aggregator says query "q1" is USER's."""
    simulator = await gateways.alipay(SCENARIO)
    aggregator = OwnerAggregator(owner=USER)
    service = await gateways.aggregator(aggregator)
    gateway = await gateways.start(
        alipay_url=str(simulator.make_url("/gateway.do")), aggregator_target=f"127.0.0.1:{service.port}"
    )
    # Every request here sends the cookies it means to, and no others.
    gateway.session.cookie_jar.update_cookies_from_headers = lambda *args, **kwargs: None
    return gateway, simulator, aggregator


async def _authorize(gateway: TestClient, simulator: TestClient, user: str = USER) -> tuple[str, str, dict]:
    """Walks /h5/login and the simulator's page: (auth_code, state, state cookie)."""
    start = await gateway.get("/h5/login", allow_redirects=False)
    assert start.status == 302
    target = urlsplit(start.headers["Location"])
    params = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert target.path == "/oauth2/publicAppAuthorize.htm"
    assert str(simulator.make_url("/")).startswith(f"{target.scheme}://{target.netloc}")
    assert params["app_id"] == APP_ID and params["scope"] == "auth_base"
    assert params["redirect_uri"] == str(gateway.make_url("/h5/callback"))
    state_cookie = _cookies(start)[STATE_COOKIE]
    assert state_cookie.value == params["state"] and len(params["state"]) >= 32
    assert state_cookie["httponly"] and state_cookie["samesite"] == "Lax"

    page = await simulator.get(target.path, params=params)
    assert page.status == 200
    assert user in await page.text()
    grant = await simulator.post(target.path, data={**params, "user_id": user}, allow_redirects=False)
    assert grant.status == 302
    back = urlsplit(grant.headers["Location"])
    returned = {k: v[0] for k, v in parse_qs(back.query).items()}
    assert f"{back.scheme}://{back.netloc}{back.path}" == params["redirect_uri"]
    assert returned["state"] == params["state"] and returned["app_id"] == APP_ID
    return returned["auth_code"], returned["state"], {STATE_COOKIE: state_cookie.value}


async def _login(gateway: TestClient, simulator: TestClient) -> tuple[dict[str, str], str]:
    """(the session cookie as a Cookie header, its CSRF token)."""
    code, state, cookies = await _authorize(gateway, simulator)
    back = await gateway.get(
        "/h5/callback", params={"auth_code": code, "state": state}, cookies=cookies, allow_redirects=False
    )
    assert back.status == 303 and back.headers["Location"] == "/"
    session = _cookies(back)[SESSION_COOKIE]
    assert session["httponly"] and session["samesite"] == "Strict" and session["path"] == "/"
    header = {"Cookie": f"{SESSION_COOKIE}={session.value}"}
    answer = await gateway.get("/h5/session", headers=header)
    assert answer.status == 200
    csrf = (await answer.json())["csrf_token"]
    assert csrf != session.value and session.value not in csrf
    return header, csrf


async def test_login_sets_only_an_httponly_strict_cookie_and_the_code_works_once(h5, caplog):
    gateway, simulator, _ = h5
    caplog.set_level(logging.DEBUG)
    code, state, cookies = await _authorize(gateway, simulator)
    back = await gateway.get(
        "/h5/callback", params={"auth_code": code, "state": state}, cookies=cookies, allow_redirects=False
    )
    assert back.status == 303 and back.headers["Location"] == "/"
    assert back.headers["Referrer-Policy"] == "no-referrer"
    assert _cookies(back)[STATE_COOKIE].value == ""  # the state is spent
    token = _cookies(back)[SESSION_COOKIE].value
    assert token and token not in await back.text()
    again = await gateway.get(
        "/h5/callback", params={"auth_code": code, "state": state}, cookies=cookies, allow_redirects=False
    )
    assert again.headers["Location"] == "/?login=failed"
    assert SESSION_COOKIE not in _cookies(again)
    # The gateway's own lines (the simulator's access log is Alipay's side).
    logged = "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records if r.name.startswith("gateway"))
    assert logged and code not in logged and state not in logged and token not in logged


@pytest.mark.parametrize("case", ["forged", "no cookie", "no code"])
async def test_a_return_without_our_state_is_refused(h5, case):
    gateway, simulator, _ = h5
    code, state, cookies = await _authorize(gateway, simulator)
    params = {"auth_code": code, "state": state}
    if case == "forged":
        params["state"] = state[:-1] + ("A" if state[-1] != "A" else "B")
    elif case == "no cookie":
        cookies = {}
    else:
        params.pop("auth_code")
    back = await gateway.get("/h5/callback", params=params, cookies=cookies, allow_redirects=False)
    assert back.status == 303 and back.headers["Location"] == "/?login=failed"
    assert SESSION_COOKIE not in _cookies(back)


async def test_cookie_session_reads_freely_and_writes_only_with_the_csrf_guard(h5):
    gateway, simulator, aggregator = h5
    cookie, csrf = await _login(gateway, simulator)
    read = await gateway.get("/api/v1/queries/q1", headers=cookie)
    assert read.status == 200
    body = {"phone": "13800138000"}
    refused = [
        {},  # no CSRF header
        {CSRF_HEADER: "0" * 64},
        {CSRF_HEADER: csrf, "Origin": "http://evil.example"},
        {CSRF_HEADER: csrf, "Sec-Fetch-Site": "cross-site"},
        {CSRF_HEADER: csrf, "Sec-Fetch-Site": "same-site"},
    ]
    for extra in refused:
        answer = await gateway.post("/api/v1/verification-codes", json=body, headers={**cookie, **extra})
        assert answer.status == 401, extra
        assert (await answer.json())["error"]["code"] == "UNAUTHENTICATED"
    origin = str(gateway.make_url("/")).rstrip("/")
    headers = {**cookie, CSRF_HEADER: csrf, "Origin": origin, "Sec-Fetch-Site": "same-origin"}
    answer = await gateway.post("/api/v1/verification-codes", json=body, headers=headers)
    assert answer.status == 202 and await answer.json() == {"resend_after": 60}
    assert aggregator.requesters == [USER, USER]


async def test_bearer_clients_are_untouched_by_the_cookie(h5):
    gateway, simulator, _ = h5
    cookie, csrf = await _login(gateway, simulator)
    # An Authorization header wins: a bad token fails even beside a good cookie.
    bad = await gateway.get("/api/v1/queries/q1", headers={**cookie, "Authorization": "Bearer " + "x" * 43})
    assert bad.status == 401 and bad.headers["WWW-Authenticate"] == "Bearer"
    # A Bearer write needs no CSRF header, as before.
    headers = await bearer(gateway, USER)
    answer = await gateway.post("/api/v1/verification-codes", json={"phone": "13800138000"}, headers=headers)
    assert answer.status == 202
    session = await gateway.post("/api/v1/sessions", json={"auth_code": "demo-auth-code"})
    assert session.status == 200 and set(await session.json()) == {"token", "expires_in"}
    assert SESSION_COOKIE not in _cookies(session)
    # /h5/session is for the cookie only.
    assert (await gateway.get("/h5/session", headers=headers)).status == 401


async def test_logout_ends_the_session(h5):
    gateway, simulator, _ = h5
    cookie, csrf = await _login(gateway, simulator)
    assert (await gateway.post("/h5/logout", json={}, headers=cookie)).status == 401  # no CSRF header
    out = await gateway.post("/h5/logout", json={}, headers={**cookie, CSRF_HEADER: csrf})
    assert out.status == 204
    assert _cookies(out)[SESSION_COOKIE].value == ""
    assert (await gateway.get("/h5/session", headers=cookie)).status == 401
    assert (await gateway.get("/api/v1/queries/q1", headers=cookie)).status == 401


async def test_the_page_and_its_files_under_a_strict_csp(gateways: Gateways):
    gateway = await gateways.start(limit_ip_requests="2/60", limit_refusal_delay_seconds=0)
    page = await gateway.get("/")
    assert page.status == 200 and page.content_type == "text/html"
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "default-src 'none'" in csp
    assert "unsafe" not in csp and "http" not in csp
    html = await page.text()
    assert '<html lang="zh-CN">' in html and "<style" not in html and " style=" not in html
    assert "<script>" not in html  # every script is a file
    total = len(html.encode())
    for name, kind in [
        ("app.css", "text/css"),
        ("main.js", "text/javascript"),
        ("api.js", "text/javascript"),
        ("form-errors.js", "text/javascript"),
        ("care-mode.js", "text/javascript"),
    ]:
        asset = await gateway.get(f"/h5/{name}")
        assert asset.status == 200 and asset.content_type == kind, name
        total += len(await asset.read())
        cached = await gateway.get(f"/h5/{name}", headers={"If-None-Match": asset.headers["ETag"]})
        assert cached.status == 304
    assert total <= 150 * 1024
    # Static files cost no database work and are not counted against the
    # address (limit 2 a minute here); the API still is.
    for _ in range(5):
        assert (await gateway.get("/h5/main.js")).status == 200
    assert (await gateway.get("/h5/index.html")).status == 404
    # HEAD answers as GET would, without the body (RFC 9110 9.3.2); the page's
    # login routes are GET only.
    for path in ("/", "/h5/main.js"):
        head = await gateway.head(path)
        assert head.status == 200 and await head.read() == b"", path
        assert head.headers["ETag" if path != "/" else "Content-Security-Policy"], path
    assert (await gateway.head("/h5/login")).status == 404  # not a file
    assert (await gateway.get("/h5/../settings.py")).status == 404
    statuses = [(await gateway.get("/h5/session")).status for _ in range(3)]
    assert statuses[-1] == 429


@pytest.mark.parametrize(
    "change",
    [
        {"app_id": "2021000000000999"},
        {"scope": "auth_everything"},
        {"redirect_uri": "javascript:alert(1)"},
        {"user_id": "2088000000000999"},
    ],
)
async def test_the_simulators_authorization_refuses_what_alipay_would(gateways: Gateways, change):
    simulator = await gateways.alipay(SCENARIO)
    form = {
        "app_id": APP_ID,
        "scope": "auth_base",
        "redirect_uri": "http://127.0.0.1:1/h5/callback",
        "state": "s",
        "user_id": USER,
        **change,
    }
    answer = await simulator.post("/oauth2/publicAppAuthorize.htm", data=form, allow_redirects=False)
    assert answer.status == 400 and "Location" not in answer.headers
