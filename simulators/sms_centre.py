"""An SMS centre: takes messages for delivery and lets tests read what reached
each phone. Submission is plain HTTP for now (SMPP comes later); the
inspection API is the CONTRACT's.

    POST   /submit              {"source", "dest", "text"} -> 200 {"message_id", "segments"}
    GET    /messages?dest=<phone>  {"messages": [{"source", "dest", "text",
                                    "segments", "received_at"}]}, oldest first
    DELETE /messages            forget everything (test hook) -> 204
"""
from __future__ import annotations

import datetime as dt
import logging
import math
import random
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass

from aiohttp import web

from simulators.faults import delay, refusal
from simulators.http_json import PHONE, json_object, json_response, string_field
from simulators.scenario import Scenario

log = logging.getLogger("simulators.sms_centre")

# One UCS-2 SMS holds 70 UTF-16 units; once split, each part loses 3 units
# (6 bytes) to the concatenation header and holds 67.
_SINGLE_UNITS = 70
_PART_UNITS = 67


def ucs2_segments(text: str) -> int:
    """How many SMS parts `text` needs in UCS-2."""
    # UTF-16 units, not characters: an emoji outside the BMP takes two.
    units = len(text.encode("utf-16-be")) // 2
    return 1 if units <= _SINGLE_UNITS else math.ceil(units / _PART_UNITS)


@dataclass(frozen=True)
class Message:
    source: str
    dest: str
    text: str
    segments: int
    received_at: str


@dataclass
class _Centre:
    scenario: Scenario
    rng: random.Random
    now: Callable[[], dt.datetime]
    messages: list[Message]


CENTRE = web.AppKey("centre", _Centre)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def create_app(
    scenario: Scenario,
    *,
    rng: random.Random | None = None,
    now: Callable[[], dt.datetime] = _utc_now,
) -> web.Application:
    app = web.Application()
    app[CENTRE] = _Centre(scenario, rng or random.Random(), now, [])
    app.router.add_post("/submit", _submit)
    app.router.add_get("/messages", _messages)
    app.router.add_delete("/messages", _clear)
    return app


async def _submit(request: web.Request) -> web.Response:
    centre = request.app[CENTRE]
    if (refused := refusal(centre.scenario.sms_centre, centre.rng)) is not None:
        return refused
    body = await json_object(request)
    source = string_field(body, "source")
    dest = string_field(body, "dest", PHONE)
    text = string_field(body, "text")
    await delay(centre.scenario.sms_centre)
    message_id = secrets.token_hex(8)
    received_at = centre.now().astimezone(dt.timezone.utc).isoformat(timespec="milliseconds")
    message = Message(source, dest, text, ucs2_segments(text), received_at.replace("+00:00", "Z"))
    centre.messages.append(message)
    # Neither the phone nor the text is logged: the text carries codes and counts.
    log.info("sms accepted", extra={"fields": {"message_id": message_id, "segments": message.segments}})
    return json_response({"message_id": message_id, "segments": message.segments})


async def _messages(request: web.Request) -> web.Response:
    dest = request.query.get("dest")
    found = [asdict(m) for m in request.app[CENTRE].messages if dest is None or m.dest == dest]
    return json_response({"messages": found})


async def _clear(request: web.Request) -> web.Response:
    request.app[CENTRE].messages.clear()
    return web.Response(status=204)
