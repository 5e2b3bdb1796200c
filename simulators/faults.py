"""Injected misbehaviour shared by the simulators: latency, being down, and
random failures drawn from an injected (seedable) random source."""

from __future__ import annotations

import asyncio
import random

from aiohttp import web

from simulators.http_json import json_response
from simulators.scenario import Behaviour


def refusal(behaviour: Behaviour, rng: random.Random) -> web.Response | None:
    """The 503 a misbehaving service answers with, or None to go ahead."""
    if behaviour.down:
        return json_response({"error": "down"}, status=503)
    if behaviour.fail_rate and rng.random() < behaviour.fail_rate:
        return json_response({"error": "injected failure"}, status=503)
    return None


async def delay(behaviour: Behaviour) -> None:
    if behaviour.latency_ms:
        await asyncio.sleep(behaviour.latency_ms / 1000)
