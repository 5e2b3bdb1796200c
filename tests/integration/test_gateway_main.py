"""`python -m gateway` as a process: fails fast on bad settings, announces
where it listens, serves, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from devstack import pki
from devstack.secrets import rsa_pair

ROOT = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YZTC_", "MONGODB_URI"))}
    return {**env, **extra}


def test_bad_settings_stop_start_up():
    proc = subprocess.run(
        [sys.executable, "-m", "gateway"], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2
    assert "alipay_app_private_key_file" in proc.stderr
    assert "Traceback" not in proc.stderr


def _start_gateway(mongodb_uri: str, tmp_path: Path, **extra: str) -> subprocess.Popen:
    """`python -m gateway` on a free loopback port with fresh Alipay keys,
    under YZTC_DEVELOPMENT=1 (the Alipay simulator's settings and plaintext
    to the absent aggregator: not what these tests are about)."""
    app_private, _ = rsa_pair(tmp_path, "app")
    _, alipay_public = rsa_pair(tmp_path, "alipay")
    return subprocess.Popen(
        [sys.executable, "-m", "gateway"],
        cwd=ROOT,
        env=_env(
            MONGODB_URI=mongodb_uri,
            YZTC_DEVELOPMENT="1",
            YZTC_GATEWAY_LISTEN="127.0.0.1:0",
            YZTC_GATEWAY_ALIPAY_APP_PRIVATE_KEY_FILE=str(app_private),
            YZTC_GATEWAY_ALIPAY_PUBLIC_KEY_FILE=str(alipay_public),
            YZTC_GATEWAY_ALIPAY_AES_KEY=base64.b64encode(bytes(16)).decode(),
            **extra,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@contextlib.contextmanager
def _running_gateway(mongodb_uri: str, tmp_path: Path, **extra: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """`_start_gateway`, yielding (the process, its first line of output);
    on leaving, SIGTERM: it must exit 0 without a traceback. Killed by its
    PID if it is still running after a failure."""
    proc = _start_gateway(mongodb_uri, tmp_path, **extra)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        yield proc, proc.stdout.readline()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


async def test_serves_and_stops_on_sigterm(mongodb_uri, tmp_path):
    with _running_gateway(mongodb_uri, tmp_path) as (_, line):
        assert line.startswith("gateway listening on http://127.0.0.1:"), line
        url = line.split()[-1]
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/healthz") as response:
                assert response.status == 200
                assert await response.json() == {"status": "ok"}
        # Served by gateway.http_protocol: the parser's refusals in the CONTRACT's shape.
        host, port = url.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer " + b"A" * 9000 + b"\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), timeout=10)
        writer.close()
        await writer.wait_closed()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.split()[1] == b"431"
        assert json.loads(body)["error"]["code"] == "REQUEST_TOO_LARGE"


async def test_serves_https_with_its_internal_certificate(mongodb_uri, tmp_path):
    """YZTC_GATEWAY_SERVE_TLS: HTTPS with the gateway's internal certificate,
    verified by the internal CA under the name the ingress checks
    ("gateway"); a client in clear, or one that does not trust the internal
    CA, gets nothing."""
    cert, key = pki.issue_service(tmp_path / "pki", "gateway")
    with _running_gateway(
        mongodb_uri,
        tmp_path,
        YZTC_GATEWAY_SERVE_TLS="true",
        YZTC_TLS_CA=str(tmp_path / "pki" / "ca.pem"),
        YZTC_TLS_CERT=str(cert),
        YZTC_TLS_KEY=str(key),
    ) as (proc, line):
        assert line.startswith("gateway listening on https://127.0.0.1:"), line + proc.stderr.read()
        url = line.split()[-1]
        internal_ca = ssl.create_default_context(cafile=str(tmp_path / "pki" / "ca.pem"))
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/healthz", ssl=internal_ca, server_hostname="gateway") as response:
                assert response.status == 200
                assert await response.json() == {"status": "ok"}
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await http.get(url + "/healthz")  # the system's roots: not the internal CA
            with pytest.raises(aiohttp.ClientError):
                await http.get(url.replace("https://", "http://") + "/healthz")
