"""The enterprise directory (GET /api/v1/enterprises), kept by the gateway
for a short time and served with an ETag so clients revalidate for free.

The aggregator owns the list (config/enterprises.json, edited by operators);
a gateway asks it at most once per `ttl` (one call at a time however many
requests wait), and if the aggregator cannot answer while an older copy is
at hand, that copy is served and the call retried after a short pause:
hotlines and unbinding guidance are better a few minutes old than missing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from gateway.json_answers import dumps
from yztc.errors import ServiceError

log = logging.getLogger("gateway")

RETRY_AFTER_FAILURE_SECONDS = 5.0


@dataclass(frozen=True)
class Directory:
    body: bytes  # the JSON answer, UTF-8
    etag: str  # strong, quoted
    fresh_until: float  # on the directory's clock


def entity_tag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 If-None-Match: `*` or any listed tag, compared weakly."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    ours = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == ours for tag in if_none_match.split(","))


class EnterpriseDirectory:
    def __init__(
        self,
        fetch: Callable[[], Awaitable[dict]],
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._ttl = ttl_seconds
        self._clock = clock
        self._cached: Directory | None = None
        self._lock = asyncio.Lock()

    def _fresh(self) -> Directory | None:
        cached = self._cached
        return cached if cached is not None and self._clock() < cached.fresh_until else None

    async def get(self) -> Directory:
        fresh = self._fresh()
        if fresh is not None:
            return fresh
        async with self._lock:
            fresh = self._fresh()  # another request may have refreshed it meanwhile
            if fresh is not None:
                return fresh
            try:
                answer = await self._fetch()
            except ServiceError:
                if self._cached is None:
                    raise
                log.warning("enterprise directory refresh failed; serving the older copy")
                self._cached = replace(self._cached, fresh_until=self._clock() + RETRY_AFTER_FAILURE_SECONDS)
                return self._cached
            body = dumps(answer).encode("utf-8")
            self._cached = Directory(body, entity_tag(body), self._clock() + self._ttl)
            return self._cached
