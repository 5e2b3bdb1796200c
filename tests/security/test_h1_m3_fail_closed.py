"""H1 and M3: internal gRPC fails closed.

The review: without YZTC_TLS_CERT every service served plaintext and, on the
aggregator, every caller became channel `local-dev` with no quota. Now each
service (aggregator, company and operator connector, notifier, gateway)
started as a real process without certificates and without YZTC_DEVELOPMENT
exits non-zero at start with a message naming the variables to set;
YZTC_DEVELOPMENT=1 allows plaintext on loopback only, with a WARNING, and the
plaintext channel still has quotas."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from devstack.stack import ROOT, free_port
from tests.security.services import (
    SERVICES,
    clean_env,
    internal_identity,
    run_for,
    service_env,
    start_until,
    stop,
)
from yztc.v1 import account_query_pb2 as pb
from yztc.v1 import account_query_pb2_grpc


@pytest.mark.parametrize("service", list(SERVICES))
def test_no_certificate_no_start(service, tmp_path):
    env = clean_env(**service_env(service, tmp_path, f"mongodb://127.0.0.1:{free_port()}/yztc"))
    status, out = run_for(SERVICES[service], env, 30)
    assert status not in (None, 0), out[-2000:]
    assert "refusing to start without TLS certificates" in out, out[-2000:]
    for name in ("YZTC_TLS_CA", "YZTC_TLS_CERT", "YZTC_TLS_KEY"):
        assert name in out
    if service == "aggregator":
        assert "YZTC_AGGREGATOR_CHANNELS_CA" in out
    assert "Traceback" not in out


def test_a_misspelt_variable_is_no_certificate(tmp_path):
    """The review's example: YZTC_TLS_CRT instead of YZTC_TLS_CERT."""
    env = clean_env(**service_env("company connector", tmp_path, ""), **internal_identity(tmp_path / "pki", "x"))
    env["YZTC_TLS_CRT"] = env.pop("YZTC_TLS_CERT")
    status, out = run_for(SERVICES["company connector"], env, 30)
    assert status not in (None, 0)
    assert "missing: YZTC_TLS_CERT" in out, out[-2000:]


def test_half_configured_tls_is_refused_even_in_development(tmp_path):
    env = clean_env(**service_env("notifier", tmp_path, ""), YZTC_DEVELOPMENT="1")
    env["YZTC_TLS_CERT"] = internal_identity(tmp_path / "pki", "sms-notifier")["YZTC_TLS_CERT"]
    status, out = run_for(SERVICES["notifier"], env, 30)
    assert status not in (None, 0)
    assert "TLS half configured" in out and "YZTC_TLS_KEY" in out, out[-2000:]


@pytest.mark.parametrize("service", ["company connector", "notifier", "aggregator"])
def test_development_plaintext_refused_off_loopback(service, tmp_path):
    env = clean_env(**service_env(service, tmp_path, f"mongodb://127.0.0.1:{free_port()}/yztc"), YZTC_DEVELOPMENT="1")
    listen = {"company connector": "YZTC_CONNECTOR_LISTEN", "notifier": "YZTC_NOTIFIER_LISTEN"}
    env[listen.get(service, "YZTC_AGGREGATOR_LISTEN")] = f"0.0.0.0:{free_port()}"
    status, out = run_for(SERVICES[service], env, 30)
    assert status not in (None, 0), out[-2000:]
    assert "non-loopback" in out and "0.0.0.0" in out, out[-2000:]


def test_development_plaintext_on_loopback_warns_at_start(tmp_path):
    env = clean_env(**service_env("operator connector", tmp_path, ""), YZTC_DEVELOPMENT="1")
    _, err = stop(start_until(SERVICES["operator connector"], env, "listening on"))
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    warnings = [line for line in lines if line.get("level") == "WARNING" and "plaintext gRPC" in line.get("msg", "")]
    assert warnings, lines


async def test_development_plaintext_channel_still_has_quotas(tmp_path, mongodb_uri):
    """M3: under plaintext the one implicit channel (`local-dev`) is admitted
    only as the channels file says, with its quotas: no bypass."""
    channels = json.loads((ROOT / "config" / "channels.json").read_text(encoding="utf-8"))
    channels["channels"]["local-dev"]["quotas"] = {"*": {"per_second": 2, "per_day": 1000}}
    (tmp_path / "channels.json").write_text(json.dumps(channels), encoding="utf-8")
    env = clean_env(**service_env("aggregator", tmp_path, mongodb_uri), YZTC_DEVELOPMENT="1")
    env["YZTC_AGGREGATOR_CHANNELS_FILE"] = str(tmp_path / "channels.json")
    proc = start_until(SERVICES["aggregator"], env, "aggregator listening on")
    try:
        async with grpc.aio.insecure_channel(env["YZTC_AGGREGATOR_LISTEN"]) as channel:
            stub = account_query_pb2_grpc.AccountQueryServiceStub(channel)
            await stub.ListEnterprises(pb.ListEnterprisesRequest(), timeout=10)  # connected and warm
            await asyncio.sleep(1.05)
            outcomes = await asyncio.gather(
                *(stub.ListEnterprises(pb.ListEnterprisesRequest(), timeout=10) for _ in range(8)),
                return_exceptions=True,
            )
    finally:
        stop(proc)
    refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert 0 < len(outcomes) - len(refused) <= 4  # two a second, the gather may straddle one boundary
    assert refused and all(e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED for e in refused), refused
    info = error_details_pb2.ErrorInfo()
    next(d for d in rpc_status.from_call(refused[0]).details if d.Is(info.DESCRIPTOR)).Unpack(info)
    assert info.reason == "RATE_LIMITED"
