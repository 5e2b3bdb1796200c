"""JSON answers as UTF-8 text (Chinese readable on the wire, not \\u escapes)."""

from __future__ import annotations

import functools
import json

from aiohttp import web

dumps = functools.partial(json.dumps, ensure_ascii=False, separators=(",", ":"))


def json_answer(body: object, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=dumps)
