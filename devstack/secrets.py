"""Development secrets in var/keys, made once and reused: the phone
encryption and hashing keys, the two RSA key pairs of the Alipay
exchange (our app's, and the Alipay simulator's), and each connector's
Ed25519 key for signing its requests to its enterprise (docs/partner-api.md)."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa


def _ensure(path: Path, make) -> Path:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(make())
        path.chmod(0o600)
    return path


def symmetric_key(folder: Path, name: str) -> str:
    """A 256-bit key, base64, e.g. for AES-GCM or HMAC."""
    path = _ensure(folder / f"{name}.b64", lambda: base64.b64encode(os.urandom(32)))
    return path.read_text().strip()


def rsa_pair(folder: Path, name: str) -> tuple[Path, Path]:
    """`<name>-private.pem` (PKCS#1, as alipay-sdk-python needs) and `<name>-public.pem` (SPKI)."""
    private, public = folder / f"{name}-private.pem", folder / f"{name}-public.pem"
    if not (private.exists() and public.exists()):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        folder.mkdir(parents=True, exist_ok=True)
        private.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        private.chmod(0o600)
        public.write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
    return private, public


def pem_body(path: Path) -> str:
    """The base64 body of a PEM file, the form Alipay's keys are configured in."""
    lines = path.read_text().strip().splitlines()
    return "".join(line for line in lines if not line.startswith("-----"))


def partner_key_id(enterprise: str) -> str:
    """The development key id of the connector for `enterprise`."""
    return f"yztc-{enterprise}-dev"


def partner_key(folder: Path, enterprise: str) -> Path:
    """`partner-<enterprise>.pem`: the connector's Ed25519 private key (PKCS#8 PEM)."""
    return _ensure(
        folder / f"partner-{enterprise}.pem",
        lambda: ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


def partner_keys_file(folder: Path, enterprises: Iterable[str]) -> Path:
    """`partner-keys.json`, what the simulated enterprises accept:
    {enterprise: {key id: SPKI PEM of its connector's key}}; rewritten on
    every call so it always matches the private keys."""
    ring = {}
    for enterprise in enterprises:
        key = serialization.load_pem_private_key(partner_key(folder, enterprise).read_bytes(), password=None)
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        ring[enterprise] = {partner_key_id(enterprise): public.decode("ascii")}
    path = folder / "partner-keys.json"
    path.write_text(json.dumps(ring, indent=2), encoding="utf-8")
    return path
