"""HTTP calls to an enterprise's API, with its failures mapped to gRPC status
codes the aggregator's retry policy understands.

Calls are made as partners expect them (docs/partner-api.md, issue 13 M10):
every request signed with this connector's own key (yztc.partner_signing),
https:// only outside development, redirects never followed (a 3xx is the
partner's failure, and the body, which holds the phone and for operators the
ID six, is sent nowhere else), and at most `max_answer_bytes` of an answer read.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import aiohttp
import grpc
from yarl import URL

from platform_connectors.settings import ConnectorSettings
from yztc.partner_signing import RequestSigner, load_private_key
from yztc.telemetry import client_span, outgoing_headers

DEFAULT_MAX_ANSWER_BYTES = 65536


class UpstreamError(Exception):
    def __init__(self, code: grpc.StatusCode, why: str) -> None:
        super().__init__(why)
        self.code = code
        self.why = why


def partner_url_problem(url: str, development: bool) -> str | None:
    """Why `url` may not be an enterprise's base URL, or None: it must be
    absolute https:// with a host, no query, fragment or credentials;
    http:// only under YZTC_DEVELOPMENT=1."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "is not an absolute https:// URL"
    if parts.scheme == "http" and not development:
        return "is http://: partners are called over HTTPS only (YZTC_DEVELOPMENT=1 allows http:// for the simulators)"
    if parts.query or parts.fragment or parts.username or parts.password:
        return "must have no query, fragment or credentials"
    return None


class Upstream:
    def __init__(
        self,
        base_url: str,
        timeout: float,
        signer: RequestSigner | None = None,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
    ) -> None:
        """`signer` None sends unsigned requests (tests of other concerns
        only: `from_settings`, what a connector starts with, always signs)."""
        self._base = base_url.rstrip("/")
        self._base_path = URL(self._base).raw_path.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._signer = signer
        self._max = max_answer_bytes
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, settings: ConnectorSettings, service: str) -> Upstream:
        """The connector's link to its enterprise. Exits the process
        (SystemExit, non-zero, naming the setting) when the URL is not
        https:// outside development, or the partner key is missing or unreadable."""
        problem = partner_url_problem(settings.upstream_url, settings.development)
        if problem:
            raise SystemExit(f"{service}: refusing to start: YZTC_CONNECTOR_UPSTREAM_URL {problem}")
        if settings.partner_key_file is None or not settings.partner_key_id:
            raise SystemExit(
                f"{service}: refusing to start: requests to the enterprise are signed; set "
                "YZTC_CONNECTOR_PARTNER_KEY_FILE (Ed25519, PKCS#8 PEM) and YZTC_CONNECTOR_PARTNER_KEY_ID"
            )
        try:
            signer = RequestSigner(load_private_key(settings.partner_key_file), settings.partner_key_id)
        except (OSError, ValueError, TypeError) as error:
            # The reason names the file or the key id's rule, never key material.
            why = str(error) if isinstance(error, ValueError) and "key id" in str(error) else type(error).__name__
            raise SystemExit(
                f"{service}: refusing to start: cannot use the partner key {settings.partner_key_file} ({why})"
            ) from None
        return cls(
            settings.upstream_url,
            settings.upstream_timeout_seconds,
            signer=signer,
            max_answer_bytes=settings.upstream_max_answer_bytes,
        )

    async def open(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self._timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        """`method` `path` (under the base URL, already percent-encoded) with
        `body` as JSON; the answer's (status, JSON object). Inside a sampled
        trace, a CLIENT span covers the request and its `traceparent` header
        goes along. UpstreamError for any failure: UNAVAILABLE for 5xx, a
        redirect, an oversized or malformed answer, RESOURCE_EXHAUSTED for
        429, NOT_FOUND for 404, INVALID_ARGUMENT for another 4xx,
        DEADLINE_EXCEEDED on timeout."""
        with client_span(method, {"http.request.method": method, "url.path": path}) as span:
            status, answer = await self._call(method, path, body)
            if span is not None:
                span.set_attribute("http.response.status_code", status)
            return status, answer

    async def _call(self, method: str, path: str, body: dict | None) -> tuple[int, dict]:
        assert self._session is not None
        payload = b"" if body is None else json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        headers = dict(outgoing_headers() or {})
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self._signer is not None:
            headers.update(self._signer.headers(method, self._base_path + path, "", payload))
        # encoded=True: the path goes out byte for byte as it was signed.
        url = URL(self._base + path, encoded=True)
        try:
            async with self._session.request(
                method,
                url,
                data=payload if body is not None else None,
                headers=headers,
                allow_redirects=False,
            ) as response:
                if 300 <= response.status < 400:
                    raise UpstreamError(grpc.StatusCode.UNAVAILABLE, "upstream answered a redirect (not followed)")
                if response.status >= 500 or response.status == 429:
                    raise UpstreamError(
                        grpc.StatusCode.RESOURCE_EXHAUSTED if response.status == 429 else grpc.StatusCode.UNAVAILABLE,
                        f"upstream answered {response.status}",
                    )
                if response.status == 401:
                    # Our signature was refused: our key or clock, not the request.
                    raise UpstreamError(grpc.StatusCode.UNAVAILABLE, "upstream refused our signature (401)")
                if response.status == 404:
                    raise UpstreamError(grpc.StatusCode.NOT_FOUND, "upstream: not found")
                if response.status >= 400:
                    raise UpstreamError(grpc.StatusCode.INVALID_ARGUMENT, f"upstream answered {response.status}")
                return response.status, await self._read_object(response)
        except TimeoutError:
            raise UpstreamError(grpc.StatusCode.DEADLINE_EXCEEDED, "upstream timed out") from None
        except aiohttp.ClientError as error:
            raise UpstreamError(grpc.StatusCode.UNAVAILABLE, f"upstream unreachable: {type(error).__name__}") from None

    async def _read_object(self, response: aiohttp.ClientResponse) -> dict:
        """The answer as a JSON object, reading at most `max_answer_bytes`."""
        if response.content_length is not None and response.content_length > self._max:
            raise UpstreamError(grpc.StatusCode.UNAVAILABLE, "upstream answer too large")
        data = bytearray()
        async for chunk in response.content.iter_chunked(16384):
            data += chunk
            if len(data) > self._max:
                raise UpstreamError(grpc.StatusCode.UNAVAILABLE, "upstream answer too large")
        try:
            answer = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise UpstreamError(grpc.StatusCode.UNAVAILABLE, "upstream answer is not JSON") from None
        if not isinstance(answer, dict):
            raise UpstreamError(grpc.StatusCode.UNAVAILABLE, "upstream answer is not a JSON object")
        return answer


async def abort(context: grpc.aio.ServicerContext, error: UpstreamError) -> None:
    """Aborts the call with the upstream failure's code (and no personal data)."""
    await context.abort(error.code, error.why)
