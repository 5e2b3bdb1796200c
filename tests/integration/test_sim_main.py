"""`python -m simulators` as `make run` starts it: a real process, started and
stopped by PID, serving all four simulators."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from devstack.secrets import partner_key, partner_key_id, partner_keys_file
from yztc.partner_signing import RequestSigner, load_private_key

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "sim-private.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    (tmp_path / "app-public.pem").write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("YZTC_")}
    env.update(
        YZTC_SIM_COMPANIES_LISTEN="127.0.0.1:0",
        YZTC_SIM_OPERATORS_LISTEN="127.0.0.1:0",
        YZTC_SIM_ALIPAY_LISTEN="127.0.0.1:0",
        YZTC_SIM_SMSC_LISTEN="127.0.0.1:0",
        YZTC_SIM_SMPP_LISTEN="127.0.0.1:0",
        YZTC_SIM_CMPP_LISTEN="127.0.0.1:0",
        YZTC_SIM_ALIPAY_PRIVATE_KEY_FILE=str(tmp_path / "sim-private.pem"),
        YZTC_SIM_ALIPAY_APP_PUBLIC_KEY_FILE=str(tmp_path / "app-public.pem"),
        # The connectors' keys, as devstack makes them: companies and operators answer signed requests only.
        YZTC_SIM_PARTNER_KEYS_FILE=str(partner_keys_file(tmp_path / "keys", ["tencent", "cmcc"])),
        **extra,
    )
    return env


def _signed(tmp_path: Path, enterprise: str, path: str, body: dict) -> dict:
    """aiohttp request arguments: `body` as JSON, signed by `enterprise`'s connector key."""
    data = json.dumps(body).encode()
    signer = RequestSigner(load_private_key(partner_key(tmp_path / "keys", enterprise)), partner_key_id(enterprise))
    return {"data": data, "headers": {"Content-Type": "application/json", **signer.headers("POST", path, "", data)}}


@pytest.fixture
def simulators(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    """The running process and {simulator name: base URL} from its start-up lines."""
    with subprocess.Popen(
        [sys.executable, "-m", "simulators"],
        cwd=ROOT,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            urls = {}
            for _ in range(4):
                line = proc.stdout.readline()
                assert " listening on " in line, f"unexpected start-up line {line!r}"
                name, _, url = line.removeprefix("simulators: ").strip().partition(" listening on ")
                urls[name] = url
            yield proc, urls
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


async def test_serves_all_four_and_stops_cleanly_on_sigterm(
    simulators: tuple[subprocess.Popen[str], dict[str, str]], tmp_path: Path
) -> None:
    proc, urls = simulators
    assert set(urls) == {"companies", "operators", "alipay", "sms_centre"}
    async with aiohttp.ClientSession() as http:
        # The shipped default scenario is in force.
        async with http.post(
            urls["companies"] + "/companies/tencent/accounts/count",
            **_signed(
                tmp_path, "tencent", "/companies/tencent/accounts/count", {"request_id": "r1", "phone": "13800138000"}
            ),
        ) as resp:
            assert (await resp.json())["total"] == 3
        async with http.post(
            urls["operators"] + "/operators/cmcc/subscribers/verify",
            **_signed(
                tmp_path, "cmcc", "/operators/cmcc/subscribers/verify", {"phone": "15000150000", "id_last6": "78901X"}
            ),
        ) as resp:
            assert await resp.json() == {"result": "ported", "ported_to": "ctcc"}
        async with http.post(urls["alipay"] + "/sim/auth-codes", json={"user_id": "2088000000000001"}) as resp:
            assert resp.status == 200
        async with http.post(
            urls["sms_centre"] + "/submit", json={"source": "10699000", "dest": "13800138000", "text": "测试"}
        ) as resp:
            assert resp.status == 200
        async with http.get(urls["sms_centre"] + "/messages", params={"dest": "13800138000"}) as resp:
            assert [m["text"] for m in (await resp.json())["messages"]] == ["测试"]

    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(10) == 0


def test_bad_scenario_stops_start_up_with_the_reason(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.json"
    scenario.write_text(json.dumps({"companies": {"Tao Bao": {}}}), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "simulators"],
        cwd=ROOT,
        env=_env(tmp_path, YZTC_SCENARIO=str(scenario)),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "companies: 'Tao Bao' is not a company id" in done.stderr


def test_missing_key_files_are_named(tmp_path: Path) -> None:
    env = _env(tmp_path)
    del env["YZTC_SIM_ALIPAY_PRIVATE_KEY_FILE"]
    done = subprocess.run(
        [sys.executable, "-m", "simulators"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert "YZTC_SIM_ALIPAY_PRIVATE_KEY_FILE" in done.stderr
