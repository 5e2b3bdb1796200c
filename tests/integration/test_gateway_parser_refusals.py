"""Requests aiohttp's parser refuses before the app sees them (issue 17,
case 4), sent as raw bytes over a socket to a running gateway: each gets a
4xx in the CONTRACT's JSON shape with X-Request-Id and the security
headers, and nothing of the request is echoed in the answer or written to
the log. Today's main answered them with aiohttp's text/plain 400 quoting
the first 100 bytes of the input, and logged the input with a traceback."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from aiohttp.test_utils import TestClient

from gateway.http_protocol import MAX_FIELD_BYTES, MAX_HEADERS, MAX_LINE_BYTES
from gateway.middlewares import SECURITY_HEADERS
from tests.integration.gateways import Gateways

# In every request below, in the part that is refused; never to be seen again.
SECRET = "13800138000"
TOKEN_PREFIX = "tok3nPr3fix"


@pytest.fixture
async def gateway(gateways: Gateways) -> TestClient:
    return await gateways.start()


async def _exchange(gateway: TestClient, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """(status, headers with lower-case names, body) of the answer to `raw`."""
    reader, writer = await asyncio.open_connection(gateway.host, gateway.port)
    try:
        writer.write(raw)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)  # the gateway closes after a refusal
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def _request(line: str = "GET /api/v1/enterprises HTTP/1.1", headers: list[str] = ()) -> bytes:
    return ("\r\n".join([line, "Host: gateway", *headers, "", ""])).encode("latin-1")


LONG_BEARER = _request(
    "GET /api/v1/queries/q1 HTTP/1.1", [f"Authorization: Bearer {TOKEN_PREFIX}{SECRET}" + "A" * 9000]
)
LONG_LINE = _request(f"GET /api/v1/queries/q1?phone={SECRET}&pad={'x' * MAX_LINE_BYTES} HTTP/1.1")
MANY_HEADERS = _request(headers=[f"X-Filler-{i}: {SECRET}" for i in range(130)])
LONG_HEADER_NAME = _request(headers=[f"X-{SECRET}" + "n" * MAX_FIELD_BYTES + ": v"])
TLS_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + SECRET.encode() * 20
CASES = {
    "authorization-over-the-limit": (LONG_BEARER, 431, "REQUEST_TOO_LARGE"),
    "request-line-over-the-limit": (LONG_LINE, 414, "REQUEST_TOO_LARGE"),
    "130-headers": (MANY_HEADERS, 431, "REQUEST_TOO_LARGE"),
    "header-name-over-the-limit": (LONG_HEADER_NAME, 431, "REQUEST_TOO_LARGE"),
    "bad-method": (f"G{SECRET}T /healthz HTTP/1.1\r\nHost: g\r\n\r\n".encode(), 400, "INVALID_ARGUMENT"),
    "bad-version": (_request(f"GET /?phone={SECRET} HTTP/9.{SECRET}"), 400, "INVALID_ARGUMENT"),
    "control-character-in-a-header": (_request(headers=[f"X-Phone: {SECRET}\x00"]), 400, "INVALID_ARGUMENT"),
    "header-without-a-colon": (_request(headers=[f"X-Phone {SECRET}"]), 400, "INVALID_ARGUMENT"),
    "tls-on-the-http-port": (TLS_HELLO, 400, "INVALID_ARGUMENT"),
}


@pytest.mark.parametrize(("raw", "status", "code"), list(CASES.values()), ids=list(CASES))
async def test_parser_refusal_is_the_contract_shape_and_echoes_nothing(gateway, caplog, raw, status, code):
    caplog.set_level(logging.DEBUG)
    got, headers, body = await _exchange(gateway, raw)
    assert got == status, body
    assert headers["content-type"] == "application/json; charset=utf-8"
    answer = json.loads(body)
    assert set(answer) == {"error"} and set(answer["error"]) == {"code", "message"}
    assert answer["error"]["code"] == code
    assert any("\u4e00" <= ch <= "\u9fff" for ch in answer["error"]["message"])
    assert len(headers["x-request-id"]) == 32
    for name, value in SECURITY_HEADERS.items():
        assert headers[name.lower()] == value
    for text in (body.decode("utf-8"), json.dumps(headers)):
        assert SECRET not in text and TOKEN_PREFIX not in text
    logged = [r for r in caplog.records if r.name.startswith(("gateway", "aiohttp"))]
    assert logged, "the refusal should leave an access-log line"
    for record in logged:
        line = record.getMessage() + json.dumps(getattr(record, "fields", {}), default=str)
        assert SECRET not in line and TOKEN_PREFIX not in line
        assert record.exc_info is None and record.exc_text is None
    [access] = [r for r in logged if r.name == "gateway.access"]
    assert access.fields["status"] == status
    assert access.fields["request_id"] == headers["x-request-id"]


async def test_requests_within_the_limits_are_served(gateway):
    # At the limits: a header line of MAX_FIELD_BYTES, MAX_HEADERS - 2 headers
    # (the Python parser also counts the request line and the blank line),
    # a request line of MAX_LINE_BYTES.
    value = "x" * (MAX_FIELD_BYTES - len("X-Pad") - 2)
    status, _, _ = await _exchange(gateway, _request("GET /healthz HTTP/1.1", [f"X-Pad: {value}", "Connection: close"]))
    assert status == 200
    fillers = [f"X-Filler-{i}: 1" for i in range(MAX_HEADERS - 4)]
    status, _, _ = await _exchange(gateway, _request("GET /healthz HTTP/1.1", [*fillers, "Connection: close"]))
    assert status == 200
    path = "/healthz?pad="
    line = f"GET {path}{'x' * (MAX_LINE_BYTES - len(path) - len('GET  HTTP/1.1'))} HTTP/1.1"
    assert len(line) == MAX_LINE_BYTES
    status, _, _ = await _exchange(gateway, _request(line, ["Connection: close"]))
    assert status == 200


async def test_a_long_bearer_within_the_limit_is_unauthenticated_as_json(gateway):
    raw = _request("GET /api/v1/queries/q1 HTTP/1.1", ["Authorization: Bearer " + "A" * 8000, "Connection: close"])
    status, headers, body = await _exchange(gateway, raw)
    assert status == 401
    assert json.loads(body)["error"]["code"] == "UNAUTHENTICATED"
    assert "A" * 100 not in body.decode()
