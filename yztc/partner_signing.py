"""Signed requests to partners (the companies' and operators' APIs): HTTP
Message Signatures (RFC 9421) with Ed25519, the body bound by a
Content-Digest (RFC 9530). docs/partner-api.md is the partners' guide.

Every request a connector sends carries three headers:

    Content-Digest:  sha-256=:<base64 SHA-256 of the body, b"" for a GET>:
    Signature-Input: yztc=("@method" "@path" "@query" "content-digest");created=<unix s>;
                     nonce="<16..64 of A-Za-z0-9_->";keyid="<key id>";alg="ed25519";tag="yztc-partner-v1"
    Signature:       yztc=:<base64 Ed25519 signature of the signature base>:

The signature base is RFC 9421's: one line per covered component,
`"<name>": <value>`, then `"@signature-params": <the Signature-Input value
after "yztc=">`, joined by "\\n" with no newline at the end.

A partner (or our simulators) verifies with `RequestVerifier`: the key id
must be one it was given for this client, the components exactly these four,
`created` within ±`window` seconds of its clock, the digest that of the body
it read, the signature good, and the (key id, nonce) pair unseen while the
request could still be fresh. Anything else is `SignatureRefused` (HTTP 401).
No personal data is signed into a header: the phone and ID six stay in the
body, covered by the digest.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import json
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

LABEL = "yztc"
TAG = "yztc-partner-v1"
ALGORITHM = "ed25519"
# What every signature covers, in this order (RFC 9421 derived components and one field).
COMPONENTS = ("@method", "@path", "@query", "content-digest")
WINDOW_SECONDS = 300
KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")

_SIGNATURE_INPUT = re.compile(r'yztc=\(((?:"[a-z@-]+"(?: "[a-z@-]+")*)?)\)((?:;[a-z]+=(?:[0-9]{1,12}|"[^"\\]*"))*)')
_SIGNATURE = re.compile(r"yztc=:([A-Za-z0-9+/]+={0,2}):")
_PARAM = re.compile(r';([a-z]+)=([0-9]+|"[^"\\]*")')


class SignatureRefused(Exception):
    """A request that must not be answered: `reason` is short and names no
    personal data (missing, malformed, unknown key, stale, digest, signature, replayed)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def content_digest(body: bytes) -> str:
    """The Content-Digest field value (RFC 9530) of `body`: `sha-256=:<base64>:`."""
    return f"sha-256=:{_b64(hashlib.sha256(body).digest())}:"


def signature_params(components: Sequence[str], params: Sequence[tuple[str, str | int]]) -> str:
    """The inner list and its parameters, as in Signature-Input and the
    signature base: `("@method" ...);created=1;keyid="k"`."""
    inner = " ".join(f'"{c}"' for c in components)
    rendered = "".join(f";{name}={value}" if isinstance(value, int) else f';{name}="{value}"' for name, value in params)
    return f"({inner}){rendered}"


def signature_base(components: Sequence[tuple[str, str]], params: str) -> bytes:
    """RFC 9421 section 2.5: `"<name>": <value>` per covered component, then
    `"@signature-params": <params>`, joined by LF."""
    lines = [f'"{name}": {value}' for name, value in components]
    lines.append(f'"@signature-params": {params}')
    return "\n".join(lines).encode("utf-8")


def _covered(method: str, path: str, query: str, digest: str) -> list[tuple[str, str]]:
    # RFC 9421 2.2.7: @query is "?" followed by the query, "?" alone when there is none.
    return list(zip(COMPONENTS, (method.upper(), path, "?" + query.removeprefix("?"), digest), strict=True))


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PKCS#8 PEM file; ValueError if it is not one."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return key


def load_public_key(pem: str) -> Ed25519PublicKey:
    """An Ed25519 public key from SPKI PEM text; ValueError if it is not one."""
    key = serialization.load_pem_public_key(pem.encode("ascii"))
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


class RequestSigner:
    """Signs our requests to one partner with our key for that partner."""

    def __init__(
        self,
        key: Ed25519PrivateKey,
        key_id: str,
        *,
        now: Callable[[], float] = time.time,
        nonce: Callable[[], str] = lambda: secrets.token_urlsafe(18),
    ) -> None:
        if not KEY_ID.fullmatch(key_id):
            raise ValueError("a key id is 1..64 of A-Za-z0-9._-")
        self.key_id = key_id
        self._key = key
        self._now = now
        self._nonce = nonce

    def headers(self, method: str, path: str, query: str, body: bytes) -> dict[str, str]:
        """Content-Digest, Signature-Input and Signature for a request of
        `method` to `path` (as sent, percent-encoded) with `query` (without
        "?", "" for none) and `body` (the exact bytes sent; b"" for none)."""
        digest = content_digest(body)
        params = signature_params(
            COMPONENTS,
            [
                ("created", int(self._now())),
                ("nonce", self._nonce()),
                ("keyid", self.key_id),
                ("alg", ALGORITHM),
                ("tag", TAG),
            ],
        )
        signature = self._key.sign(signature_base(_covered(method, path, query, digest), params))
        return {
            "Content-Digest": digest,
            "Signature-Input": f"{LABEL}={params}",
            "Signature": f"{LABEL}=:{_b64(signature)}:",
        }


class NonceCache:
    """(key id, nonce) pairs seen, each kept until the request it came with
    could no longer be fresh. Bounded: past `capacity` live entries every new
    request is refused (fail closed) until some expire."""

    def __init__(self, capacity: int = 1_000_000) -> None:
        self._capacity = capacity
        self._live: set[tuple[str, str]] = set()
        self._expiry: list[tuple[float, tuple[str, str]]] = []

    def __len__(self) -> int:
        return len(self._live)

    def first_use(self, key_id: str, nonce: str, keep_until: float, now: float) -> bool:
        """Records the pair; False when it was already there (a replay)."""
        while self._expiry and self._expiry[0][0] < now:
            _, pair = heapq.heappop(self._expiry)
            self._live.discard(pair)
        pair = (key_id, nonce)
        if pair in self._live:
            return False
        if len(self._live) >= self._capacity:
            raise SignatureRefused("replay store full")
        self._live.add(pair)
        heapq.heappush(self._expiry, (keep_until, pair))
        return True


class RequestVerifier:
    """Checks requests signed by `RequestSigner` against the public keys of
    the clients allowed here ({key id: key})."""

    def __init__(
        self,
        keys: Mapping[str, Ed25519PublicKey],
        *,
        window: float = WINDOW_SECONDS,
        now: Callable[[], float] = time.time,
        nonces: NonceCache | None = None,
    ) -> None:
        self._keys = dict(keys)
        self._window = window
        self._now = now
        self._nonces = nonces if nonces is not None else NonceCache()

    def verify(self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes) -> str:
        """The key id that signed the request; SignatureRefused otherwise.
        `headers` is case-insensitive as aiohttp's are (or lower-case names)."""
        signature_input = headers.get("Signature-Input") or headers.get("signature-input")
        signature_field = headers.get("Signature") or headers.get("signature")
        digest = headers.get("Content-Digest") or headers.get("content-digest")
        if not (signature_input and signature_field and digest):
            raise SignatureRefused("unsigned")
        parsed = _SIGNATURE_INPUT.fullmatch(signature_input.strip())
        signed = _SIGNATURE.fullmatch(signature_field.strip())
        if parsed is None or signed is None:
            raise SignatureRefused("malformed signature")
        components = tuple(c.strip('"') for c in parsed.group(1).split(" ")) if parsed.group(1) else ()
        if components != COMPONENTS:
            raise SignatureRefused("wrong covered components")
        params: dict[str, str] = {}
        for name, value in _PARAM.findall(parsed.group(2)):
            if name in params:
                raise SignatureRefused("malformed signature")
            params[name] = value.strip('"')
        if params.get("alg") != ALGORITHM or params.get("tag") != TAG:
            raise SignatureRefused("wrong algorithm or tag")
        key = self._keys.get(params.get("keyid", ""))
        if key is None:
            raise SignatureRefused("unknown key")
        created_text, nonce = params.get("created", ""), params.get("nonce", "")
        if not created_text.isdigit() or not NONCE.fullmatch(nonce):
            raise SignatureRefused("malformed signature")
        created, now = int(created_text), self._now()
        if abs(now - created) > self._window:
            raise SignatureRefused("stale")
        if digest.strip() != content_digest(body):
            raise SignatureRefused("digest")
        base = signature_base(
            _covered(method, path, query, digest.strip()),
            signature_input.strip().removeprefix(f"{LABEL}="),
        )
        try:
            key.verify(base64.b64decode(signed.group(1), validate=True), base)
        except (InvalidSignature, ValueError):
            raise SignatureRefused("signature") from None
        if not self._nonces.first_use(params["keyid"], nonce, created + self._window, now):
            raise SignatureRefused("replayed")
        return params["keyid"]


class PartnerKeyRing:
    """Which client keys each partner accepts: {enterprise id: {key id: key}},
    read from a JSON file {"<enterprise>": {"<key id>": "<SPKI PEM>"}}. A key
    id is honoured only at the enterprise it is listed under (one credential
    per connector, per partner); two ids may be listed during a rotation."""

    def __init__(self, keys: Mapping[str, Mapping[str, Ed25519PublicKey]]) -> None:
        self._keys = {enterprise: dict(ring) for enterprise, ring in keys.items()}

    @classmethod
    def from_file(cls, path: Path) -> PartnerKeyRing:
        """ValueError naming the entry (never a key) when the file is not that shape."""
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{path}: not a JSON object of enterprise -> {{key id: public key}}")
        keys: dict[str, dict[str, Ed25519PublicKey]] = {}
        for enterprise, ring in data.items():
            if not isinstance(ring, dict):
                raise ValueError(f"{path}: {enterprise}: not an object of key id -> public key")
            keys[enterprise] = {}
            for key_id, pem in ring.items():
                if not KEY_ID.fullmatch(key_id) or not isinstance(pem, str):
                    raise ValueError(f"{path}: {enterprise}: bad key id or key {key_id!r}")
                keys[enterprise][key_id] = load_public_key(pem)
        return cls(keys)

    def for_enterprise(self, enterprise: str) -> dict[str, Ed25519PublicKey]:
        return dict(self._keys.get(enterprise, {}))

    def verifiers(
        self, *, window: float = WINDOW_SECONDS, now: Callable[[], float] = time.time
    ) -> dict[str, RequestVerifier]:
        """One verifier per enterprise, all sharing one nonce cache."""
        nonces = NonceCache()
        return {
            enterprise: RequestVerifier(ring, window=window, now=now, nonces=nonces)
            for enterprise, ring in self._keys.items()
        }


def public_pem(key: Ed25519PublicKey) -> str:
    """SPKI PEM text of `key`, the form partners are given."""
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")
