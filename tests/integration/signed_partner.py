"""What the company and operator simulator tests share: a key per
enterprise's client, as devstack makes them, and requests signed with it."""

from __future__ import annotations

import json
from typing import Any

from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from yztc.partner_signing import PartnerKeyRing, RequestSigner


def clients(*enterprises: str) -> tuple[PartnerKeyRing, dict[str, RequestSigner]]:
    """A key ring accepting one fresh key per enterprise, and the signers holding those keys."""
    keys = {e: Ed25519PrivateKey.generate() for e in enterprises}
    ring = PartnerKeyRing({e: {f"yztc-{e}-test": k.public_key()} for e, k in keys.items()})
    return ring, {e: RequestSigner(k, f"yztc-{e}-test") for e, k in keys.items()}


async def signed(
    client: TestClient,
    method: str,
    path: str,
    signer: RequestSigner | None,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """`method` `path` with `body` as JSON (or `raw` bytes), signed by
    `signer` (None: unsigned); (status, JSON answer)."""
    payload = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    sent = {"Content-Type": "application/json"} if payload else {}
    if signer is not None:
        sent.update(signer.headers(method, path, "", payload))
    sent.update(headers or {})
    async with client.request(method, path, data=payload or None, headers=sent) as resp:
        return resp.status, await resp.json()
