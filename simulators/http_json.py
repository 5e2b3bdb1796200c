"""JSON at the simulators' HTTP edges: reading request bodies (anything but
the expected object is a 400 with a reason, never a stack trace) and answering."""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

PHONE = re.compile(r"1[3-9]\d{9}")


def json_response(data: Any, status: int = 200) -> web.Response:
    """A JSON answer with Chinese left readable (app names, SMS texts) for people using curl."""
    return web.json_response(data, status=status, dumps=_dumps)


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False)


def bad_request(reason: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": reason}), content_type="application/json")


async def json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise bad_request("body is not JSON") from None
    if not isinstance(body, dict):
        raise bad_request("body is not a JSON object")
    return body


def string_field(body: dict[str, Any], name: str, pattern: re.Pattern[str] | None = None) -> str:
    """body[name] as a non-empty string (matching `pattern` if given), else 400.

    The reason names the field only: the value may be personal data.
    """
    value = body.get(name)
    if not isinstance(value, str) or not value or (pattern is not None and not pattern.fullmatch(value)):
        raise bad_request(f"{name} missing or malformed")
    return value
