"""Signed requests to partners (yztc/partner_signing.py): the RFC 9421 and
RFC 9530 test vectors, a round trip, and each way a request is refused."""

from __future__ import annotations

import base64
import itertools
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from yztc.partner_signing import (
    NonceCache,
    PartnerKeyRing,
    RequestSigner,
    RequestVerifier,
    SignatureRefused,
    content_digest,
    public_pem,
    signature_base,
    signature_params,
)

# RFC 9421 appendix B.1.4, "test-key-ed25519".
RFC_KEY = b"""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF
-----END PRIVATE KEY-----
"""
RFC_PUBLIC = b"""-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=
-----END PUBLIC KEY-----
"""


def test_rfc9421_b26_ed25519_signature_is_reproduced_byte_for_byte() -> None:
    """RFC 9421 B.2.6: the signature base and the (deterministic) Ed25519 signature."""
    key = serialization.load_pem_private_key(RFC_KEY, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    components = [
        ("date", "Tue, 20 Apr 2021 02:07:55 GMT"),
        ("@method", "POST"),
        ("@path", "/foo"),
        ("@authority", "example.com"),
        ("content-type", "application/json"),
        ("content-length", "18"),
    ]
    params = signature_params([c for c, _ in components], [("created", 1618884473), ("keyid", "test-key-ed25519")])
    base = signature_base(components, params)
    assert base == (
        b'"date": Tue, 20 Apr 2021 02:07:55 GMT\n"@method": POST\n"@path": /foo\n"@authority": example.com\n'
        b'"content-type": application/json\n"content-length": 18\n"@signature-params": ("date" "@method" "@path" '
        b'"@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"'
    )
    signature = key.sign(base)
    assert base64.b64encode(signature) == (
        b"wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw=="
    )
    public = serialization.load_pem_public_key(RFC_PUBLIC)
    public.verify(signature, base)  # type: ignore[union-attr]


def test_rfc9530_content_digest_example() -> None:
    assert content_digest(b'{"hello": "world"}') == "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"


KEY = serialization.load_pem_private_key(RFC_KEY, password=None)
assert isinstance(KEY, Ed25519PrivateKey)
BODY = b'{"phone":"13800138000","id_last6":"12345X"}'
PATH = "/operators/cmcc/subscribers/verify"


def _signer(
    now: float = 1_700_000_000.0, key: Ed25519PrivateKey = KEY, key_id: str = "yztc-cmcc-1", nonce: str = ""
) -> RequestSigner:
    counter = itertools.count()
    return RequestSigner(key, key_id, now=lambda: now, nonce=lambda: nonce or f"nonce-{next(counter):011d}")


def _verifier(now: float = 1_700_000_000.0, **options) -> RequestVerifier:
    return RequestVerifier({"yztc-cmcc-1": KEY.public_key()}, now=lambda: now, **options)


def test_known_request_headers_and_round_trip() -> None:
    headers = _signer().headers("POST", PATH, "", BODY)
    assert headers["Content-Digest"] == content_digest(BODY)
    assert headers["Signature-Input"] == (
        'yztc=("@method" "@path" "@query" "content-digest");created=1700000000;'
        'nonce="nonce-00000000000";keyid="yztc-cmcc-1";alg="ed25519";tag="yztc-partner-v1"'
    )
    # Ed25519 is deterministic: the same request, key and parameters give the same signature.
    base = (
        f'"@method": POST\n"@path": {PATH}\n"@query": ?\n"content-digest": {content_digest(BODY)}\n'
        f'"@signature-params": {headers["Signature-Input"].removeprefix("yztc=")}'
    ).encode()
    assert headers["Signature"] == f"yztc=:{base64.b64encode(KEY.sign(base)).decode()}:"
    assert _verifier().verify("POST", PATH, "", headers, BODY) == "yztc-cmcc-1"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda h, r: h.pop("Signature"), "unsigned"),
        (lambda h, r: h.pop("Content-Digest"), "unsigned"),
        (lambda h, r: h.update(Signature="yztc=:!!:"), "malformed signature"),
        (lambda h, r: r.update(body=b'{"phone":"13900139000","id_last6":"12345X"}'), "digest"),
        (lambda h, r: r.update(path="/operators/cucc/subscribers/verify"), "signature"),
        (lambda h, r: r.update(method="PUT"), "signature"),
        (lambda h, r: r.update(query="x=1"), "signature"),
        (
            lambda h, r: h.update({"Signature-Input": h["Signature-Input"].replace('"@query" ', "")}),
            "wrong covered components",
        ),
        (
            lambda h, r: h.update({"Signature-Input": h["Signature-Input"].replace("yztc-cmcc-1", "yztc-cucc-1")}),
            "unknown key",
        ),
        (
            lambda h, r: h.update({"Signature-Input": h["Signature-Input"].replace("ed25519", "hmac-sha256")}),
            "wrong algorithm or tag",
        ),
        (
            lambda h, r: h.update({"Signature-Input": h["Signature-Input"].replace("1700000000", "1700000001")}),
            "signature",
        ),
    ],
)
def test_a_changed_request_is_refused(change, reason: str) -> None:
    headers = _signer().headers("POST", PATH, "", BODY)
    request = {"method": "POST", "path": PATH, "query": "", "body": BODY}
    change(headers, request)
    with pytest.raises(SignatureRefused) as refused:
        _verifier().verify(request["method"], request["path"], request["query"], headers, request["body"])
    assert refused.value.reason == reason


def test_a_signature_by_another_key_under_our_key_id_is_refused() -> None:
    headers = _signer(key=Ed25519PrivateKey.generate()).headers("POST", PATH, "", BODY)
    with pytest.raises(SignatureRefused, match="signature"):
        _verifier().verify("POST", PATH, "", headers, BODY)


@pytest.mark.parametrize(("skew", "fresh"), [(-300, True), (300, True), (-301, False), (301, False), (-3600, False)])
def test_created_must_be_within_the_window(skew: int, fresh: bool) -> None:
    headers = _signer(now=1_700_000_000 + skew).headers("POST", PATH, "", BODY)
    if fresh:
        assert _verifier().verify("POST", PATH, "", headers, BODY) == "yztc-cmcc-1"
    else:
        with pytest.raises(SignatureRefused, match="stale"):
            _verifier().verify("POST", PATH, "", headers, BODY)


def test_a_replayed_request_is_refused_and_its_nonce_forgotten_once_it_is_stale() -> None:
    nonces = NonceCache()
    headers = _signer().headers("POST", PATH, "", BODY)
    assert _verifier(nonces=nonces).verify("POST", PATH, "", headers, BODY)
    with pytest.raises(SignatureRefused, match="replayed"):
        _verifier(now=1_700_000_100.0, nonces=nonces).verify("POST", PATH, "", headers, BODY)
    # Past the window the request is stale anyway, so its nonce need not be
    # kept: the next fresh request's check drops it.
    later = _verifier(now=1_700_000_301.0, nonces=nonces)
    with pytest.raises(SignatureRefused, match="stale"):
        later.verify("POST", PATH, "", headers, BODY)
    fresh = _signer(now=1_700_000_301.0, nonce="other-nonce-000000").headers("POST", PATH, "", BODY)
    assert later.verify("POST", PATH, "", fresh, BODY)
    assert len(nonces) == 1


def test_a_forged_request_does_not_use_up_a_nonce() -> None:
    nonces = NonceCache()
    good = _signer().headers("POST", PATH, "", BODY)
    forged = dict(good, Signature="yztc=:" + base64.b64encode(b"x" * 64).decode() + ":")
    with pytest.raises(SignatureRefused, match="signature"):
        _verifier(nonces=nonces).verify("POST", PATH, "", forged, BODY)
    assert _verifier(nonces=nonces).verify("POST", PATH, "", good, BODY)


def test_a_full_nonce_store_refuses_rather_than_forgets() -> None:
    verifier = _verifier(nonces=NonceCache(capacity=2))
    signer = _signer()
    for _ in range(2):
        verifier.verify("POST", PATH, "", signer.headers("POST", PATH, "", BODY), BODY)
    with pytest.raises(SignatureRefused, match="replay store full"):
        verifier.verify("POST", PATH, "", signer.headers("POST", PATH, "", BODY), BODY)


def test_key_ring_file_scopes_each_key_to_its_enterprise(tmp_path: Path) -> None:
    other = Ed25519PrivateKey.generate()
    path = tmp_path / "keys.json"
    ring = {
        "cmcc": {"yztc-cmcc-1": public_pem(KEY.public_key())},
        "cucc": {"yztc-cucc-1": public_pem(other.public_key())},
    }
    path.write_text(json.dumps(ring), encoding="utf-8")
    verifiers = PartnerKeyRing.from_file(path).verifiers(now=lambda: 1_700_000_000.0)
    headers = _signer().headers("POST", PATH, "", BODY)
    with pytest.raises(SignatureRefused, match="unknown key"):
        verifiers["cucc"].verify("POST", PATH, "", headers, BODY)
    assert verifiers["cmcc"].verify("POST", PATH, "", headers, BODY) == "yztc-cmcc-1"


@pytest.mark.parametrize("content", ['["not an object"]', '{"cmcc": {"bad id!": "x"}}', '{"cmcc": {"k": "not a key"}}'])
def test_a_malformed_key_ring_file_is_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "keys.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError):
        PartnerKeyRing.from_file(path)
