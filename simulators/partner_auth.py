"""The companies' and operators' side of signed requests (docs/partner-api.md):
each checks that a request is signed by a key of the client it was given for
that enterprise before it reads anything else. A missing, malformed, forged
or stale signature, a key of another enterprise's client, or a replayed nonce
is answered 401 with the reason only, never with data."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from aiohttp import web

from yztc.partner_signing import (
    ALGORITHM,
    COMPONENTS,
    LABEL,
    TAG,
    PartnerKeyRing,
    RequestVerifier,
    SignatureRefused,
    signature_params,
)

log = logging.getLogger("simulators.partner_auth")

VERIFIERS = web.AppKey("partner_verifiers", dict)
# RFC 9421 5.1: what a signature must cover, for a client that sent none or a wrong one.
ACCEPT_SIGNATURE = f"{LABEL}=" + signature_params(COMPONENTS, [("alg", ALGORITHM), ("tag", TAG)])


def install(app: web.Application, keys: PartnerKeyRing | None, now: Callable[[], float] = time.time) -> None:
    """Puts the enterprises' verifiers on `app`; with no keys every partner call is refused."""
    app[VERIFIERS] = keys.verifiers(now=now) if keys is not None else {}


async def signed_body(request: web.Request, enterprise: str) -> bytes:
    """The body of `request`, once its signature is checked against the keys
    of `enterprise`'s client; raises 401 otherwise."""
    body = await request.read()
    verifier: RequestVerifier | None = request.app[VERIFIERS].get(enterprise)
    try:
        if verifier is None:
            raise SignatureRefused("no client keys for this enterprise")
        verifier.verify(
            request.method, request.rel_url.raw_path, request.rel_url.raw_query_string, request.headers, body
        )
    except SignatureRefused as refused:
        log.info("request refused", extra={"fields": {"enterprise": enterprise, "reason": refused.reason}})
        raise web.HTTPUnauthorized(
            text=json.dumps({"error": "unauthenticated", "reason": refused.reason}),
            content_type="application/json",
            headers={"Accept-Signature": ACCEPT_SIGNATURE},
        ) from None
    return body
