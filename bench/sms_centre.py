"""What reached the handsets, read from the SMS-centre simulator's inspection
API (CONTRACT: `GET /messages?dest=` -> {"messages": [{"source", "dest",
"text", "segments", "received_at"}]}) and its `DELETE /messages` hook."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time

import aiohttp

CODE = re.compile(r"验证码为(\d{6})")
# Every result SMS names the phone's "关联的互联网账号" (CONTRACT "SMS").
RESULT_MARK = "关联的互联网账号"


def received_at(message: dict) -> float:
    """The centre's timestamp as Unix seconds."""
    return dt.datetime.fromisoformat(message["received_at"]).timestamp()


class SmsCentre:
    def __init__(self, http: aiohttp.ClientSession, port: int) -> None:
        self._http = http
        self._url = f"http://127.0.0.1:{port}/messages"

    async def messages(self, dest: str | None = None) -> list[dict]:
        params = {"dest": dest} if dest else {}
        async with self._http.get(self._url, params=params) as response:
            response.raise_for_status()
            return (await response.json())["messages"]

    async def forget(self) -> None:
        """Forget every message: later reads hold only what came since."""
        async with self._http.delete(self._url) as response:
            response.raise_for_status()

    async def codes(self) -> dict[str, str]:
        """Each phone's latest verification code."""
        found = {}
        for message in await self.messages():
            match = CODE.search(message["text"])
            if match:
                found[message["dest"]] = match.group(1)
        return found

    async def results(self) -> dict[str, float]:
        """When each phone's first result SMS was received (Unix seconds)."""
        found: dict[str, float] = {}
        for message in await self.messages():
            if RESULT_MARK in message["text"] and message["dest"] not in found:
                found[message["dest"]] = received_at(message)
        return found

    async def has_result(self, phone: str) -> bool:
        return any(RESULT_MARK in m["text"] for m in await self.messages(phone))

    async def wait_results(
        self, phones: list[str], timeout: float, poll: float = 0.5, until: int | None = None
    ) -> dict[str, float]:
        """{phone: result SMS time} once every phone (or `until` of them) has
        its result, or what came by the timeout. Between full reads it
        watches one phone still waiting (the latest accepted), which costs
        the centre little; with `until` (some phones may never get one) it
        reads everything each time."""
        wanted = set(phones)
        enough = len(wanted) if until is None else until
        deadline = time.monotonic() + timeout
        watch = phones[-1] if phones and until is None else None
        while True:
            if watch is None or await self.has_result(watch):
                found = {p: t for p, t in (await self.results()).items() if p in wanted}
                if len(found) >= enough:
                    return found
                if until is None:
                    watch = [p for p in phones if p not in found][-1]
            if time.monotonic() > deadline:
                return {p: t for p, t in (await self.results()).items() if p in wanted}
            await asyncio.sleep(poll)
