"""RSA2 (SHA256withRSA) as Alipay's OpenAPI uses it: the content a request
signs, and signing and verifying with keys given as PEM files, PEM text, or
the bare base64 bodies Alipay's own tools and SDKs pass around.

Written on `cryptography` rather than the SDK's helpers on purpose: the
simulator then checks the SDK (and our gateway) against an independent
implementation instead of against itself.
"""

from __future__ import annotations

import base64
import binascii
import os
import textwrap
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def sign_content(params: Mapping[str, str]) -> str:
    """The text a request's `sign` covers.

    Alipay's rule for requests: every parameter but `sign` itself, empty
    values dropped, sorted by name, raw (not URL-encoded) `k=v` joined by `&`.
    `sign_type` is included; it is only dropped when verifying notifications.
    """
    return "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "sign" and v)


def sign_rsa2(key: rsa.RSAPrivateKey, data: bytes) -> str:
    return base64.b64encode(key.sign(data, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def verify_rsa2(key: rsa.RSAPublicKey, data: bytes, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature, validate=True), data, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def load_private_key(source: str | os.PathLike[str]) -> rsa.RSAPrivateKey:
    """An RSA private key from a PEM file, PEM text or a PKCS#1 body."""
    key = serialization.load_pem_private_key(_pem(source, "RSA PRIVATE KEY"), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("Alipay keys are RSA keys")
    return key


def load_public_key(source: str | os.PathLike[str]) -> rsa.RSAPublicKey:
    """An RSA public key from a PEM file, PEM text or an SPKI body."""
    key = serialization.load_pem_public_key(_pem(source, "PUBLIC KEY"))
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("Alipay keys are RSA keys")
    return key


def _pem(source: str | os.PathLike[str], label: str) -> bytes:
    if isinstance(source, os.PathLike) or (not source.lstrip().startswith("-----") and os.path.isfile(source)):
        text = Path(source).read_text(encoding="ascii")
    else:
        text = source
    if "-----BEGIN" in text:
        return text.encode("ascii")
    body = "".join(text.split())
    return f"-----BEGIN {label}-----\n{textwrap.fill(body, 64)}\n-----END {label}-----\n".encode("ascii")
