"""M2: channel identity is the certificate's SAN URI, the channels' CA is
separate from the internal one, and a channel's certificate can be revoked
without a restart (CONTRACT "Channels").

The review: identity was the first CN (a CSR with two CNs, or a re-issued
certificate with the same CN, got in), one CA signed everything, and a
leaked certificate came back with its channel. Each is refused here, in the
CONTRACT's error shape (UNAUTHENTICATED with ErrorInfo) where the TLS
handshake itself does not refuse it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from aggregator.channel_quotas import ChannelsFile
from devstack import pki
from devstack.stack import ROOT, Stack
from tests.security.services import (
    SERVICES,
    channel_stack_fixture,
    channels_document,
    clean_env,
    internal_identity,
    open_channel,
    pair,
    run_for,
    service_env,
    write_atomically,
)
from yztc.v1 import account_query_pb2 as pb
from yztc.v1 import account_query_pb2_grpc


@pytest.fixture(scope="module")
def channel_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Path]]:
    yield from channel_stack_fixture(tmp_path_factory)


async def _list(channel: grpc.aio.Channel) -> pb.ListEnterprisesResponse:
    return await account_query_pb2_grpc.AccountQueryServiceStub(channel).ListEnterprises(
        pb.ListEnterprisesRequest(), timeout=5
    )


async def _refusal(stack: Stack, cert: Path, key: Path, port: int | None = None) -> grpc.aio.AioRpcError:
    async with open_channel(stack, cert, key, port) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _list(channel)
    return caught.value


def _reason(error: grpc.aio.AioRpcError) -> str:
    info = error_details_pb2.ErrorInfo()
    detail = next(d for d in rpc_status.from_call(error).details if d.Is(info.DESCRIPTOR))
    detail.Unpack(info)
    return info.reason


def _assert_unauthenticated(error: grpc.aio.AioRpcError) -> None:
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED, error
    assert _reason(error) == "UNAUTHENTICATED"


async def test_the_channel_is_named_by_its_san_uri_not_its_cn(channel_stack, tmp_path):
    stack, _ = channel_stack
    async with open_channel(stack, *pair(stack, "wechat-demo")) as channel:
        assert len((await _list(channel)).enterprises) == 8
    channels_ca = pki.ensure_ca(stack.pki_dir, pki.CHANNELS_CA)
    refused = {
        # The right CN, from the channels' CA, but no SAN URI.
        "CN only": pki.issue(tmp_path / "cn", "wechat-demo", ca=channels_ca),
        # Two channel URIs: which one would it be? Neither.
        "two URIs": pki.issue(
            tmp_path / "two",
            "wechat-demo",
            uris=(pki.CHANNEL_PREFIX + "wechat-demo", pki.CHANNEL_PREFIX + "wechat-two"),
            ca=channels_ca,
        ),
        # A service identity from the channels' CA is no channel.
        "service URI": pki.issue(tmp_path / "svc", "gateway", uris=(pki.SERVICE_PREFIX + "gateway",), ca=channels_ca),
        # A channel only the gateway stands for, on its internal port.
        "internal-only channel": pki.issue_channel(tmp_path / "gw", "alipay-gateway", ca=channels_ca),
        # The review's CSR trick: the CN says one thing, the URI another, unknown one.
        "unknown URI": pki.issue(
            tmp_path / "unknown", "wechat-demo", uris=(pki.CHANNEL_PREFIX + "wechat-evil",), ca=channels_ca
        ),
    }
    for why, (cert, key) in refused.items():
        error = await _refusal(stack, cert, key)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED, why
        assert _reason(error) == "UNAUTHENTICATED", why


async def test_the_cas_are_separate(channel_stack, tmp_path):
    """The channel port trusts only the channels' CA, the internal port only
    the internal CA: a certificate of the other fails the handshake."""
    stack, _ = channel_stack
    internal_ca = pki.ensure_ca(stack.pki_dir, pki.INTERNAL_CA)
    cases = {
        "internal CA, channel URI, on the channel port": (
            pki.issue_channel(tmp_path / "a", "wechat-demo", ca=internal_ca),
            stack.ports.aggregator,
        ),
        "the gateway's own certificate on the channel port": (pair(stack, "gateway"), stack.ports.aggregator),
        "a channel certificate on the internal port": (pair(stack, "wechat-demo"), stack.ports.aggregator_internal),
    }
    for why, ((cert, key), port) in cases.items():
        error = await _refusal(stack, cert, key, port)
        assert error.code() == grpc.StatusCode.UNAVAILABLE, why  # the handshake fails
    # ... while the gateway on the internal port is channel alipay-gateway.
    async with open_channel(stack, *pair(stack, "gateway"), port=stack.ports.aggregator_internal) as channel:
        assert len((await _list(channel)).enterprises) == 8
    # Another internal service on the internal port is no channel.
    error = await _refusal(stack, *pair(stack, "aggregator"), port=stack.ports.aggregator_internal)
    _assert_unauthenticated(error)


async def test_a_revoked_certificate_is_refused_at_once_without_restart(channel_stack):
    """Revoke a live channel's serial by editing the file while the
    aggregator runs: its next call, on the connection it already has, is
    refused; the other channel is not; removing the serial lets it back."""
    stack, channels = channel_stack
    demo, two = pair(stack, "wechat-demo"), pair(stack, "wechat-two")
    aggregator = next(c for c in stack.supervisor.children if c.name == "aggregator").process
    assert aggregator is not None
    async with open_channel(stack, *demo) as demo_channel, open_channel(stack, *two) as two_channel:
        assert len((await _list(demo_channel)).enterprises) == 8
        assert len((await _list(two_channel)).enterprises) == 8

        document = channels_document()
        document["revoked_serials"] = [pki.serial_hex(demo[0]).upper()]  # as openssl prints it
        write_atomically(channels, document)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _list(demo_channel)
        _assert_unauthenticated(caught.value)
        assert len((await _list(two_channel)).enterprises) == 8

        write_atomically(channels, channels_document())
        assert len((await _list(demo_channel)).enterprises) == 8
    assert aggregator.poll() is None, "the aggregator stopped"
    assert next(c for c in stack.supervisor.children if c.name == "aggregator").process is aggregator  # no restart


async def test_a_removed_channel_is_refused_without_restart(channel_stack):
    stack, channels = channel_stack
    two = pair(stack, "wechat-two")
    async with open_channel(stack, *two) as channel:
        assert len((await _list(channel)).enterprises) == 8
        document = channels_document()
        del document["channels"]["wechat-two"]
        write_atomically(channels, document)
        try:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await _list(channel)
            _assert_unauthenticated(caught.value)
        finally:
            write_atomically(channels, channels_document())


def test_production_refuses_a_channels_file_admitting_development_channels(tmp_path):
    """L7 (part): outside YZTC_DEVELOPMENT the aggregator will not start with
    config/channels.json (wechat-demo, local-dev); config/channels.prod.json passes that check."""
    env = clean_env(
        **service_env("aggregator", tmp_path, "mongodb://127.0.0.1:1/yztc"),
        **internal_identity(tmp_path / "pki", "aggregator"),
    )
    pki.ensure_ca(tmp_path / "pki", pki.CHANNELS_CA)
    env["YZTC_AGGREGATOR_CHANNELS_CA"] = str(tmp_path / "pki" / "channels-ca.pem")
    env["YZTC_AGGREGATOR_CHANNELS_FILE"] = str(ROOT / "config" / "channels.json")
    status, out = run_for(SERVICES["aggregator"], env, 30)
    assert status not in (None, 0), out[-2000:]
    assert "development channels" in out and "wechat-demo" in out, out[-2000:]
    prod = json.loads((ROOT / "config" / "channels.prod.json").read_text(encoding="utf-8"))
    assert set(prod["channels"]) == {"alipay-gateway"}


def test_the_channels_file_reloads_and_a_broken_edit_keeps_the_last_good_one(tmp_path):
    path = tmp_path / "channels.json"
    write_atomically(path, channels_document())
    channels = ChannelsFile(path, development=True)
    assert channels.current().revoked_serials == frozenset()
    document = channels_document()
    document["revoked_serials"] = ["0A:1b"]
    write_atomically(path, document)
    assert channels.current().revoked_serials == frozenset({0x0A1B})
    path.write_text("{half written", encoding="utf-8")
    assert channels.current().revoked_serials == frozenset({0x0A1B})
    # Valid JSON of the wrong shape: refused the same way, at start too.
    for wrong in ({"channels": []}, {"channels": {"x": []}}, {"channels": {"x": {"quotas": []}}}):
        write_atomically(path, wrong)
        assert channels.current().revoked_serials == frozenset({0x0A1B}), wrong
        with pytest.raises(SystemExit, match="cannot read channels file"):
            ChannelsFile(path, development=True)
    # Outside development a file admitting a development channel is refused
    # at start, and not taken on reload.
    with pytest.raises(SystemExit, match="development channels"):
        ChannelsFile(ROOT / "config" / "channels.json", development=False)
    prod_path = tmp_path / "prod.json"
    write_atomically(prod_path, json.loads((ROOT / "config" / "channels.prod.json").read_text(encoding="utf-8")))
    prod = ChannelsFile(prod_path, development=False)
    write_atomically(prod_path, channels_document())
    assert set(prod.current().channels) == {"alipay-gateway"}
