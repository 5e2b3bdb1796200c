"""The gateway's HTTP edge against a real FerretDB, with the aggregator and
Alipay unreachable: every bad input is refused before any call is made, in
the CONTRACT's error shape, and a valid request meets 503 UNAVAILABLE."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import secrets

import pytest
from aiohttp.test_utils import TestClient

from gateway import h5_page
from gateway.keys import AGGREGATOR, MONGO, SESSIONS
from gateway.middlewares import SECURITY_HEADERS
from tests.integration.gateways import Gateways, bearer
from yztc.identifiers import normalise_phone

USER = "2088000000000001"
GOOD_QUERY = {"phone": "13800138000", "id_last6": "12345X", "code": "123456", "consent": True}
SECRETS_IN_TESTS = ("13800138000", "12345X", "123456")


@pytest.fixture
async def client(gateways: Gateways) -> TestClient:
    return await gateways.start(call_timeout_seconds=2, alipay_timeout_seconds=2)


@pytest.fixture
async def auth(client: TestClient) -> dict[str, str]:
    return await bearer(client, USER)


async def _error(response, status: int, code: str) -> dict:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    body = await response.json()
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert "Traceback" not in body["error"]["message"]
    return body["error"]


# -- bodies -------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b"{", b"", b"not json", b'{"phone": "13800138000",}', b"\xff\xfe{}", b"[" * 16000],
    ids=["truncated", "empty", "text", "trailing-comma", "not-utf8", "deep-nesting"],
)
async def test_malformed_json_is_invalid_argument(client, auth, raw):
    response = await client.post(
        "/api/v1/verification-codes",
        data=raw,
        headers={**auth, "Content-Type": "application/json"},
    )
    error = await _error(response, 400, "INVALID_ARGUMENT")
    assert "JSON" in error["message"]


# Issue 17, case 3: json.loads took each of these, so they reached the
# (here unreachable) aggregator: 503, or with the duplicate consent a query.
_LENIENT = {
    "duplicate-consent": b'{"phone":"13800138000","id_last6":"12345X","code":"123456","consent":false,"consent":true}',
    "duplicate-phone": b'{"phone":"13900139000","id_last6":"12345X","code":"123456","consent":true,"phone":"13800138000"}',
    "nan": b'{"phone":"13800138000","id_last6":"12345X","code":"123456","consent":true,"n":NaN}',
    "infinity": b'{"phone":"13800138000","id_last6":"12345X","code":"123456","consent":true,"n":-Infinity}',
    "beyond-a-double": b'{"phone":"13800138000","id_last6":"12345X","code":"123456","consent":true,"n":1e999}',
    "lone-surrogate": b'{"phone":"13800138000","id_last6":"12345X","code":"123456","consent":true,"n":"\\ud800"}',
    "lone-surrogate-key": b'{"phone":"13800138000","id_last6":"12345X","code":"123456","consent":true,"\\udc00":1}',
    "utf-8-bom": b'\xef\xbb\xbf{"phone":"13800138000","id_last6":"12345X","code":"123456","consent":true}',
    "utf-16": '{"phone":"13800138000","id_last6":"12345X","code":"123456","consent":true}'.encode("utf-16-le"),
    "invalid-utf-8-in-a-string": b'{"phone":"13800138000","id_last6":"12345X","code":"123456","consent":true,"n":"\xc3\x28"}',
    "trailing-data": b'{"phone":"13800138000","id_last6":"12345X","code":"123456","consent":true} {}',
}


@pytest.mark.parametrize("raw", list(_LENIENT.values()), ids=list(_LENIENT))
async def test_body_that_is_not_strict_json_is_invalid_argument(client, auth, raw):
    response = await client.post("/api/v1/queries", data=raw, headers={**auth, "Content-Type": "application/json"})
    error = await _error(response, 400, "INVALID_ARGUMENT")
    assert "JSON" in error["message"]
    assert not any(s in error["message"] for s in SECRETS_IN_TESTS)


async def test_strict_json_with_unicode_escapes_and_whitespace_is_taken(client, auth):
    # The strictness refuses what RFC 8259 does, nothing it allows: escapes,
    # a correct surrogate pair, unknown members, whitespace around the value.
    raw = (
        b' \r\n{"phone":"\\u0031\\u0033800138000","id_last6":"12345X","code":"123456",'
        b'"consent":true,"note":"\\ud83d\\ude00 \xe4\xb8\xad","n":[1.5,-0,2e3,null]}\n'
    )
    response = await client.post("/api/v1/queries", data=raw, headers={**auth, "Content-Type": "application/json"})
    await _error(response, 503, "UNAVAILABLE")


@pytest.mark.parametrize("body", [[], ["13800138000"], "13800138000", 42, None, True])
async def test_non_object_json_is_invalid_argument(client, auth, body):
    response = await client.post(
        "/api/v1/verification-codes",
        data=json.dumps(body),
        headers={**auth, "Content-Type": "application/json"},
    )
    error = await _error(response, 400, "INVALID_ARGUMENT")
    assert "JSON 对象" in error["message"]


@pytest.mark.parametrize(
    "phone",
    [
        None,
        13800138000,
        ["13800138000"],
        {"n": "13800138000"},
        True,
        "",
        "1380013800",
        "138001380001",
        "12800138000",
        "+1 13800138000",
        "138.0013.8000",
        "+86 138 0013 800a",
    ],
)
async def test_bad_phone_is_invalid_argument_naming_the_field(client, auth, phone):
    body = {} if phone is None else {"phone": phone}
    response = await client.post("/api/v1/verification-codes", json=body, headers=auth)
    error = await _error(response, 400, "INVALID_ARGUMENT")
    assert "phone" in error["message"]
    assert "13800138000" not in error["message"] and "1380013800" not in error["message"]


@pytest.mark.parametrize(
    "phone", ["13800138000", "+86 138-0013-8000", "8613800138000", "+8613800138000", "138 0013 8000"]
)
async def test_accepted_phone_forms_reach_the_aggregator(client, auth, phone):
    # Valid, so the gateway calls the (unreachable) aggregator: 503, nothing accepted.
    response = await client.post("/api/v1/verification-codes", json={"phone": phone}, headers=auth)
    await _error(response, 503, "UNAVAILABLE")


@pytest.mark.parametrize(
    "phone",
    [
        "1３800138000",
        "138\u30000013\u30008000",
        "13800138000\u001f",
        "\u200b13800138000",
        "＋86 13800138000",
        "13800138000\u3000",
        "138\u00a00013\u00a08000",
    ],
)
async def test_the_gateway_takes_exactly_the_phones_yztc_identifiers_takes(client, auth, phone):
    # One normalisation for both doors (issue 17, case 2): what the HTTP
    # door takes is what yztc.identifiers (which gRPC uses) takes.
    response = await client.post("/api/v1/verification-codes", json={"phone": phone}, headers=auth)
    try:
        taken = normalise_phone(phone) is not None
    except ValueError:
        taken = False
    if not taken:
        error = await _error(response, 400, "INVALID_ARGUMENT")
        assert "phone" in error["message"]
    else:
        await _error(response, 503, "UNAVAILABLE")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("phone", "12345"),
        ("phone", 13800138000),
        ("id_last6", None),
        ("id_last6", 123456),
        ("id_last6", "12345"),
        ("id_last6", "1234567"),
        ("id_last6", "12345Y"),
        ("id_last6", "X12345"),
        ("code", None),
        ("code", 123456),
        ("code", "12345"),
        ("code", "1234567"),
        ("code", "12345a"),
        ("code", "١٢٣٤٥٦"),
    ],
)
async def test_bad_query_field_is_invalid_argument_naming_it(client, auth, field, value):
    body = dict(GOOD_QUERY)
    if value is None:
        del body[field]
    else:
        body[field] = value
    response = await client.post("/api/v1/queries", json=body, headers=auth)
    error = await _error(response, 400, "INVALID_ARGUMENT")
    assert field in error["message"]
    assert not any(s in error["message"] for s in SECRETS_IN_TESTS)


@pytest.mark.parametrize("consent", ["missing", False, "true", 1, None, [True]])
async def test_consent_must_be_json_true(client, auth, consent):
    body = dict(GOOD_QUERY)
    if consent == "missing":
        del body["consent"]
    else:
        body["consent"] = consent
    response = await client.post("/api/v1/queries", json=body, headers=auth)
    await _error(response, 400, "CONSENT_REQUIRED")


async def test_wrong_field_is_reported_before_missing_consent(client, auth):
    body = {"phone": "13800138000", "id_last6": "12345X", "code": "12"}
    response = await client.post("/api/v1/queries", json=body, headers=auth)
    error = await _error(response, 400, "INVALID_ARGUMENT")
    assert "code" in error["message"]


async def test_valid_query_with_aggregator_down_is_unavailable(client, auth):
    body = {**GOOD_QUERY, "id_last6": "12345x", "phone": "+86 138-0013-8000"}
    response = await client.post("/api/v1/queries", json=body, headers=auth)
    await _error(response, 503, "UNAVAILABLE")


async def test_get_query_with_aggregator_down_is_unavailable(client, auth):
    response = await client.get("/api/v1/queries/" + "a" * 32, headers=auth)
    await _error(response, 503, "UNAVAILABLE")


async def test_malformed_query_id_is_not_found(client, auth):
    response = await client.get("/api/v1/queries/" + "x" * 65, headers=auth)
    await _error(response, 404, "NOT_FOUND")
    response = await client.get("/api/v1/queries/a%20b", headers=auth)
    await _error(response, 404, "NOT_FOUND")


async def test_enterprises_needs_no_token_but_the_aggregator(client):
    response = await client.get("/api/v1/enterprises")
    await _error(response, 503, "UNAVAILABLE")


# -- sessions and tokens -------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/verification-codes", "/api/v1/queries"])
@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer garbage",
        "Bearer " + "A" * 43,  # the right shape, but no such session
        "Bearer " + "A" * 5000,
    ],
)
async def test_missing_or_bad_token_is_unauthenticated(client, path, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await client.post(path, json=GOOD_QUERY, headers=headers)
    await _error(response, 401, "UNAUTHENTICATED")
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_get_query_needs_a_token(client):
    response = await client.get("/api/v1/queries/" + "a" * 32)
    await _error(response, 401, "UNAUTHENTICATED")


async def test_expired_session_is_unauthenticated(client):
    token = secrets.token_urlsafe(32)
    now = dt.datetime.now(dt.UTC)
    db = client.app[MONGO].get_default_database()
    await db["sessions"].insert_one(
        {
            "_id": hashlib.sha256(token.encode()).hexdigest(),
            "user_id": USER,
            "created_at": now - dt.timedelta(hours=3),
            "expires_at": now - dt.timedelta(seconds=1),
        }
    )
    headers = {"Authorization": f"Bearer {token}"}
    response = await client.post("/api/v1/verification-codes", json={"phone": "13800138000"}, headers=headers)
    await _error(response, 401, "UNAUTHENTICATED")
    assert await client.app[SESSIONS].purge_expired() == 1


async def test_live_session_token_is_stored_only_as_its_hash(client, auth):
    token = auth["Authorization"].removeprefix("Bearer ")
    docs = await client.app[MONGO].get_default_database()["sessions"].find().to_list()
    assert len(docs) == 1
    assert docs[0]["_id"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in json.dumps(docs, default=str)
    # The user id is stored only sealed and as a keyed hash (L6), never as is.
    assert USER not in json.dumps(docs, default=str)
    assert set(docs[0]) >= {"user", "user_box"}
    assert (docs[0]["expires_at"] - docs[0]["created_at"]) == dt.timedelta(seconds=7200)
    # A lower-case scheme is still the Bearer scheme (RFC 7235: case-insensitive).
    assert await client.app[SESSIONS].lookup(token) == USER
    response = await client.post(
        "/api/v1/verification-codes",
        json={"phone": "13800138000"},
        headers={"Authorization": f"bearer {token}"},
    )
    await _error(response, 503, "UNAVAILABLE")


@pytest.mark.parametrize(
    "body", [{}, {"auth_code": ""}, {"auth_code": 123}, {"auth_code": "a\nb"}, {"auth_code": "x" * 300}]
)
async def test_bad_auth_code_is_invalid_argument(client, body):
    response = await client.post("/api/v1/sessions", json=body)
    error = await _error(response, 400, "INVALID_ARGUMENT")
    assert "auth_code" in error["message"]


async def test_ending_the_session_kills_its_token(client, auth):
    # CONTRACT: DELETE /api/v1/sessions -> 204; the session ends.
    response = await client.delete("/api/v1/sessions", headers=auth)
    assert response.status == 204 and await response.read() == b""
    await _error(await client.get("/api/v1/queries/q1", headers=auth), 401, "UNAUTHENTICATED")
    await _error(await client.delete("/api/v1/sessions", headers=auth), 401, "UNAUTHENTICATED")
    await _error(await client.delete("/api/v1/sessions"), 401, "UNAUTHENTICATED")


async def test_alipay_unreachable_is_unavailable(client):
    response = await client.post("/api/v1/sessions", json={"auth_code": "demo-auth-code"})
    await _error(response, 503, "UNAVAILABLE")


# -- size, media type, routing -------------------------------------------------


async def test_body_over_16_kib_is_payload_too_large(client, auth):
    body = json.dumps({"phone": "13800138000", "pad": "x" * 16384}).encode()
    response = await client.post(
        "/api/v1/verification-codes", data=body, headers={**auth, "Content-Type": "application/json"}
    )
    await _error(response, 413, "PAYLOAD_TOO_LARGE")


async def test_chunked_body_over_16_kib_is_payload_too_large(client, auth):
    async def chunks():
        yield b'{"phone": "13800138000", "pad": "'
        for _ in range(20):
            yield b"x" * 1024
        yield b'"}'

    response = await client.post(
        "/api/v1/verification-codes", data=chunks(), headers={**auth, "Content-Type": "application/json"}
    )
    assert "Content-Length" not in response.request_info.headers
    await _error(response, 413, "PAYLOAD_TOO_LARGE")


async def test_body_of_exactly_16_kib_is_read(client, auth):
    head = b'{"phone": "13800138000", "pad": "'
    body = head + b"x" * (16384 - len(head) - 2) + b'"}'
    assert len(body) == 16384
    response = await client.post(
        "/api/v1/verification-codes", data=body, headers={**auth, "Content-Type": "application/json"}
    )
    await _error(response, 503, "UNAVAILABLE")  # valid: went on to the (down) aggregator


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1", "application/jsonx"],
)
async def test_non_json_is_unsupported_media_type(client, auth, content_type):
    headers = dict(auth)
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = await client.post(
        "/api/v1/verification-codes",
        data=b'{"phone": "13800138000"}',
        headers=headers,
        skip_auto_headers=["Content-Type"],
    )
    await _error(response, 415, "UNSUPPORTED_MEDIA_TYPE")


async def test_json_with_utf8_charset_is_accepted(client, auth):
    response = await client.post(
        "/api/v1/verification-codes",
        data=b'{"phone": "13800138000"}',
        headers={**auth, "Content-Type": "application/json; charset=UTF-8"},
    )
    await _error(response, 503, "UNAVAILABLE")


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
async def test_unknown_path_is_not_found_json(client, method):
    response = await client.request(method, "/api/v1/nothing-here?phone=13800138000", data=b"x")
    await _error(response, 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/sessions"),
        ("PUT", "/api/v1/queries"),
        ("DELETE", "/api/v1/queries/abc"),
        ("POST", "/api/v1/enterprises"),
        ("POST", "/healthz"),
    ],
)
async def test_wrong_method_is_method_not_allowed_json(client, method, path):
    response = await client.request(method, path, data=b"text", headers={"Content-Type": "text/plain"})
    await _error(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["Allow"]


# -- headers, logs, probes, document ---------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/healthz"), ("GET", "/nope"), ("POST", "/api/v1/queries"), ("GET", "/api/v1/openapi.json")],
)
async def test_security_headers_on_every_answer(client, method, path):
    response = await client.request(method, path)
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Request-Id"]


async def test_request_id_is_echoed_or_made(client):
    response = await client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert response.headers["X-Request-Id"] == "abc-123"
    response = await client.get("/healthz", headers={"X-Request-Id": "bad id\twith 13800138000"})
    assert response.headers["X-Request-Id"] not in ("", "bad id\twith 13800138000")
    assert len(response.headers["X-Request-Id"]) == 32


async def test_access_log_has_route_pattern_and_no_personal_data(client, auth, caplog):
    caplog.set_level(logging.INFO)
    await client.post("/api/v1/queries", json=GOOD_QUERY, headers=auth)
    await client.get("/api/v1/queries/q13800138000?phone=13800138000", headers=auth)
    await client.post("/api/v1/sessions", json={"auth_code": "secret-auth-code"})
    access = [r for r in caplog.records if r.name == "gateway.access"]
    routes = [r.fields["route"] for r in access]
    assert routes == ["/api/v1/queries", "/api/v1/queries/{query_id}", "/api/v1/sessions"]
    assert [r.fields["status"] for r in access] == [503, 503, 503]
    assert all(r.fields["request_id"] and r.fields["method"] for r in access)
    token = auth["Authorization"].removeprefix("Bearer ")
    for record in caplog.records:
        line = record.getMessage() + json.dumps(getattr(record, "fields", {}), default=str)
        for secret in (*SECRETS_IN_TESTS, "12345X", "secret-auth-code", token):
            assert secret not in line


async def test_healthz_is_always_ok(client):
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_readyz_is_unavailable_without_the_aggregator(client):
    response = await client.get("/readyz")
    await _error(response, 503, "UNAVAILABLE")


async def test_openapi_document_lists_every_path(client):
    response = await client.get("/api/v1/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {
        "/api/v1/sessions",
        "/api/v1/phone-number",
        "/api/v1/verification-codes",
        "/api/v1/queries",
        "/api/v1/queries/{query_id}",
        "/api/v1/enterprises",
        "/api/v1/openapi.json",
        "/healthz",
        "/readyz",
    }
    routes = {(r.method, r.resource.canonical) for r in client.app.router.routes() if r.method != "HEAD"}
    documented = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    # The H5 page and its login are for browsers, not part of the JSON API.
    page_routes = {(method, path) for method, path, _ in h5_page.ROUTES}
    assert routes - page_routes == documented


async def test_unexpected_failure_is_503_without_details(client, caplog, monkeypatch):
    async def broken() -> dict:
        raise RuntimeError("boom with 13800138000")

    monkeypatch.setattr(client.app[AGGREGATOR], "list_enterprises", broken)
    response = await client.get("/api/v1/enterprises", headers={"X-Request-Id": "rid-1"})
    error = await _error(response, 503, "UNAVAILABLE")
    assert "boom" not in json.dumps(error)
    [record] = [r for r in caplog.records if r.getMessage() == "unexpected error"]
    assert record.fields["request_id"] == "rid-1"
    assert record.fields["error"] == "RuntimeError"
    assert record.exc_info is None
    assert "13800138000" not in json.dumps(record.fields)
