"""Helpers for the security tests that start services as real processes
(H1/M3 fail closed, M4 secrets in logs) or a whole stack with a channels
file of their own (M2 channel identity, I2 health and reflection)."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from devstack import pki, secrets
from devstack.stack import ROOT, Ports, Stack, free_port
from yztc.identifiers import COMPANY_IDS, OPERATOR_IDS

SCENARIO = ROOT / "simulators" / "default_scenario.json"
KEY = base64.b64encode(bytes(range(32))).decode()
# Every service the review names: argv after `python -m`.
SERVICES = {
    "aggregator": ["aggregator"],
    "company connector": ["platform_connectors", "company", "tencent"],
    "operator connector": ["platform_connectors", "operator", "cmcc"],
    "notifier": ["sms_notifier"],
    "gateway": ["gateway"],
}


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any YZTC_* setting or database, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("YZTC_") and k != "MONGODB_URI"}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


def service_env(service: str, keys: Path, mongodb_uri: str) -> dict[str, str]:
    """Settings valid for `service` in every respect but TLS (none given):
    https partner URLs, keys made for the test, loopback addresses."""
    dead = f"127.0.0.1:{free_port()}"
    if service == "aggregator":
        return {
            "MONGODB_URI": mongodb_uri,
            "YZTC_AGGREGATOR_LISTEN": f"127.0.0.1:{free_port()}",
            "YZTC_AGGREGATOR_INTERNAL_LISTEN": f"127.0.0.1:{free_port()}",
            "YZTC_AGGREGATOR_COMPANIES": json.dumps({c: dead for c in COMPANY_IDS}),
            "YZTC_AGGREGATOR_OPERATORS": json.dumps({o: dead for o in OPERATOR_IDS}),
            "YZTC_AGGREGATOR_NOTIFIER_TARGET": dead,
            "YZTC_AGGREGATOR_PHONE_KEYS": json.dumps({"k1": KEY}),
            "YZTC_AGGREGATOR_HASH_KEYS": json.dumps({"h1": KEY}),
            "YZTC_AGGREGATOR_HASH_KEY_ID": "h1",
            "YZTC_AGGREGATOR_CHANNELS_FILE": str(ROOT / "config" / "channels.prod.json"),
        }
    if service.endswith("connector"):
        kind = service.split()[0]
        keys.mkdir(parents=True, exist_ok=True)
        (keys / "partner.pem").write_bytes(
            ed25519.Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return {
            "YZTC_CONNECTOR_LISTEN": f"127.0.0.1:{free_port()}",
            "YZTC_CONNECTOR_UPSTREAM_URL": f"https://{dead}/{kind}",
            "YZTC_CONNECTOR_PARTNER_KEY_FILE": str(keys / "partner.pem"),
            "YZTC_CONNECTOR_PARTNER_KEY_ID": "p1",
        }
    if service == "notifier":
        return {
            "MONGODB_URI": mongodb_uri,
            "YZTC_NOTIFIER_LISTEN": f"127.0.0.1:{free_port()}",
            "YZTC_NOTIFIER_SMSC_PORT": str(free_port()),
            "YZTC_NOTIFIER_PASSWORD": "s3cret!",
            "YZTC_NOTIFIER_DATA_KEY": KEY,
        }
    assert service == "gateway", service
    secrets.rsa_pair(keys, "app")
    secrets.rsa_pair(keys, "alipay")
    return {
        "MONGODB_URI": mongodb_uri,
        "YZTC_GATEWAY_LISTEN": f"127.0.0.1:{free_port()}",
        "YZTC_GATEWAY_AGGREGATOR_TARGET": dead,
        "YZTC_GATEWAY_ALIPAY_URL": f"https://{dead}/gateway.do",
        "YZTC_GATEWAY_ALIPAY_AUTHORIZE_URL": f"https://{dead}/oauth2/publicAppAuthorize.htm",
        "YZTC_GATEWAY_ALIPAY_APP_PRIVATE_KEY_FILE": str(keys / "app-private.pem"),
        "YZTC_GATEWAY_ALIPAY_PUBLIC_KEY_FILE": str(keys / "alipay-public.pem"),
        "YZTC_GATEWAY_ALIPAY_AES_KEY": base64.b64encode(bytes(16)).decode(),
        "YZTC_GATEWAY_ALIPAY_APP_ID": "2021009999999999",
        "YZTC_GATEWAY_HASH_KEYS": json.dumps({"h1": KEY}),
        "YZTC_GATEWAY_HASH_KEY_ID": "h1",
    }


def internal_identity(folder: Path, name: str) -> dict[str, str]:
    """YZTC_TLS_* for internal service `name` from a development internal CA in `folder`."""
    cert, key = pki.issue_service(folder, name)
    return {"YZTC_TLS_CA": str(folder / "ca.pem"), "YZTC_TLS_CERT": str(cert), "YZTC_TLS_KEY": str(key)}


def run_for(argv: list[str], env: dict[str, str], seconds: float) -> tuple[int | None, str]:
    """Runs `python -m argv` for at most `seconds`, then SIGTERM (by its PID):
    (exit status, or None if it was still running; stdout and stderr together)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", *argv], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        out, _ = proc.communicate(timeout=seconds)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        return None, out


def start_until(argv: list[str], env: dict[str, str], marker: str, timeout: float = 30) -> subprocess.Popen:
    """Starts `python -m argv` and waits for a stdout line containing `marker`."""
    proc = subprocess.Popen(
        [sys.executable, "-m", *argv], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if marker in line:
            return proc
        if not line and proc.poll() is not None:
            break
    proc.kill()
    out, err = proc.communicate()
    raise AssertionError(f"{argv} did not start: {err[-3000:]}")


def stop(proc: subprocess.Popen) -> tuple[str, str]:
    """SIGTERM (by PID), then the rest of its (stdout, stderr); pipes closed."""
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return out, err


# -- a stack whose channels file the test may edit ---------------------------


def channels_document() -> dict:
    """The development channels file plus a second public channel, `wechat-two`."""
    document = json.loads((ROOT / "config" / "channels.json").read_text(encoding="utf-8"))
    document["channels"]["wechat-two"] = json.loads(json.dumps(document["channels"]["wechat-demo"]))
    return document


def write_atomically(path: Path, document: dict) -> None:
    """As the runbook says to: write a new file, then rename it over the old."""
    staging = path.with_suffix(".new")
    staging.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    os.replace(staging, path)


def channel_stack_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Path]]:
    """(stack, its channels file): the stack as `make run` starts it, on free ports."""
    var = tmp_path_factory.mktemp("security-stack")
    channels = var / "channels.json"
    write_atomically(channels, channels_document())
    stack = Stack(
        var / "var",
        Ports.free(),
        scenario=str(SCENARIO),
        aggregator_env={"YZTC_AGGREGATOR_CHANNELS_FILE": str(channels)},
    )
    stack.start()
    try:
        pki.issue_channel(stack.pki_dir, "wechat-two")
        yield stack, channels
    finally:
        stack.stop()


def mtls_channel(ca: Path, target: str, cert: Path, key: Path) -> grpc.aio.Channel:
    """A mutual-TLS channel to `target`, verifying the server by the CA in `ca`."""
    creds = grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=key.read_bytes(),
        certificate_chain=cert.read_bytes(),
    )
    return grpc.aio.secure_channel(target, creds)


def open_channel(stack: Stack, cert: Path, key: Path, port: int | None = None) -> grpc.aio.Channel:
    """To the aggregator's public channel port (or `port`), verifying it with the internal CA."""
    return mtls_channel(stack.pki_dir / "ca.pem", f"127.0.0.1:{port or stack.ports.aggregator}", cert, key)


def pair(stack: Stack, name: str) -> tuple[Path, Path]:
    return stack.pki_dir / f"{name}.pem", stack.pki_dir / f"{name}-key.pem"
