"""The gateway's HTTP limits and how a refusal of aiohttp's parser maps to
the CONTRACT (the refusals themselves, over a socket, are in
tests/integration/test_gateway_parser_refusals.py)."""

from __future__ import annotations

import pytest
from aiohttp.http_exceptions import BadHttpMessage, BadHttpMethod, BadStatusLine, InvalidHeader, LineTooLong

from gateway.http_protocol import MAX_FIELD_BYTES, MAX_LINE_BYTES, _refusal


def test_the_two_line_limits_differ():
    # LineTooLong names only the limit it met: that tells 414 from 431.
    assert MAX_LINE_BYTES != MAX_FIELD_BYTES


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (LineTooLong(b"GET /?phone=13800138000...", MAX_LINE_BYTES), 414, "REQUEST_TOO_LARGE"),
        (LineTooLong(b"Bearer tok...", MAX_FIELD_BYTES), 431, "REQUEST_TOO_LARGE"),
        (BadHttpMessage("Too many headers received"), 431, "REQUEST_TOO_LARGE"),
        (BadHttpMessage("Duplicate 'Host' header found."), 400, "INVALID_ARGUMENT"),
        (BadHttpMethod("G13800138000T"), 400, "INVALID_ARGUMENT"),
        (BadStatusLine("HTTP/9.9"), 400, "INVALID_ARGUMENT"),
        (InvalidHeader(b"X-Phone: 13800138000\x00"), 400, "INVALID_ARGUMENT"),
        (None, 400, "INVALID_ARGUMENT"),
    ],
)
def test_parser_errors_map_to_contract_codes(error, status, code):
    got_status, got_code, message = _refusal(400, error, MAX_LINE_BYTES)
    assert (got_status, got_code) == (status, code)
    assert "138" not in message and message


@pytest.mark.parametrize("status", [500, 504])
def test_anything_else_is_unavailable_never_500(status):
    assert _refusal(status, RuntimeError("boom 13800138000"), MAX_LINE_BYTES)[:2] == (503, "UNAVAILABLE")
