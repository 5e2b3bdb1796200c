"""HTTP calls to an enterprise's API, with its failures mapped to gRPC status
codes the aggregator's retry policy understands."""

from __future__ import annotations

import aiohttp
import grpc

from yztc.telemetry import client_span, outgoing_headers


class UpstreamError(Exception):
    def __init__(self, code: grpc.StatusCode, why: str) -> None:
        super().__init__(why)
        self.code = code
        self.why = why


class Upstream:
    def __init__(self, base_url: str, timeout: float) -> None:
        self._base = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self._timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        """`method` `path` with `body` as JSON; the answer's (status, JSON
        body). Inside a sampled trace, a CLIENT span covers the request and
        its `traceparent` header goes along."""
        with client_span(method, {"http.request.method": method, "url.path": path}) as span:
            status, answer = await self._call(method, path, body)
            if span is not None:
                span.set_attribute("http.response.status_code", status)
            return status, answer

    async def _call(self, method: str, path: str, body: dict | None) -> tuple[int, dict]:
        assert self._session is not None
        try:
            async with self._session.request(
                method, self._base + path, json=body, headers=outgoing_headers()
            ) as response:
                if response.status >= 500 or response.status == 429:
                    raise UpstreamError(
                        grpc.StatusCode.RESOURCE_EXHAUSTED if response.status == 429 else grpc.StatusCode.UNAVAILABLE,
                        f"upstream answered {response.status}",
                    )
                if response.status == 404:
                    raise UpstreamError(grpc.StatusCode.NOT_FOUND, "upstream: not found")
                if response.status >= 400:
                    raise UpstreamError(grpc.StatusCode.INVALID_ARGUMENT, f"upstream answered {response.status}")
                return response.status, await response.json()
        except TimeoutError:
            raise UpstreamError(grpc.StatusCode.DEADLINE_EXCEEDED, "upstream timed out") from None
        except aiohttp.ClientError as error:
            raise UpstreamError(grpc.StatusCode.UNAVAILABLE, f"upstream unreachable: {type(error).__name__}") from None


async def abort(context: grpc.aio.ServicerContext, error: UpstreamError) -> None:
    """Aborts the call with the upstream failure's code (and no personal data)."""
    await context.abort(error.code, error.why)
