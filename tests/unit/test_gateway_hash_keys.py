"""The gateway's keyed hashes (yztc.keyed_hashes under YZTC_GATEWAY_HASH_KEYS), the login prefixes of an IPv6 client
(client_address.wider_prefixes), and the production refusals of the
gateway's settings (L7)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from devstack.secrets import rsa_pair
from gateway.client_address import wider_prefixes
from gateway.settings import GatewaySettings
from yztc.keyed_hashes import KeyedHasher

K1, K2 = b"1" * 32, b"2" * 32


def test_a_keyed_hash_names_its_key_and_depends_on_key_and_purpose() -> None:
    one = KeyedHasher({"k1": K1}, "k1")
    digest = one.digest("ip", "203.0.113.7")
    kid, _, mac = digest.partition(".")
    assert kid == "k1" and len(mac) == 32
    assert mac not in hashlib.sha256(b"ip\x00203.0.113.7").hexdigest()
    assert one.digest("ip", "203.0.113.7") == digest
    assert one.digest("user", "203.0.113.7") != digest
    assert KeyedHasher({"k1": K2}, "k1").digest("ip", "203.0.113.7") != digest


def test_during_a_rotation_lookups_try_every_key_current_first() -> None:
    rotated = KeyedHasher({"k1": K1, "k2": K2}, "k2")
    assert rotated.rotating and rotated.key_ids == ("k2", "k1")
    old = KeyedHasher({"k1": K1}, "k1").digest("user", "2088")
    assert rotated.all_digests("user", "2088")[1] == old
    assert rotated.digest("user", "2088").startswith("k2.")


@pytest.mark.parametrize(("keys", "current"), [({"k1": K1}, "k2"), ({"k 1": K1}, "k 1"), ({"k1": b"short"}, "k1")])
def test_bad_keys_are_refused(keys, current) -> None:
    with pytest.raises(ValueError):
        KeyedHasher(keys, current)


def test_wider_prefixes() -> None:
    assert wider_prefixes("2001:db8:1:2::/64") == {56: "2001:db8:1::/56", 48: "2001:db8:1::/48"}
    assert wider_prefixes("2001:db8:1:2ff::/64")[56] == "2001:db8:1:200::/56"
    assert wider_prefixes("203.0.113.7") == {} == wider_prefixes("unknown")


def _settings(tmp_path: Path, **values) -> GatewaySettings:
    private, public = rsa_pair(tmp_path, "prod")
    chosen = {"alipay_app_private_key_file": private, "alipay_public_key_file": public, **values}
    return GatewaySettings(alipay_aes_key=base64.b64encode(bytes(16)).decode(), **chosen)


def test_production_settings_pass_and_development_ones_are_named(tmp_path: Path) -> None:
    good = {
        "alipay_url": "https://openapi.alipay.com/gateway.do",
        "alipay_authorize_url": "https://openauth.alipay.com/oauth2/publicAppAuthorize.htm",
        "alipay_app_id": "2021004100000000",
        "hash_keys": {"h1": base64.b64encode(K1).decode()},
        "hash_key_id": "h1",
    }
    assert _settings(tmp_path, **good).production_refusals() == []
    refusals = _settings(tmp_path).production_refusals()  # every default is a development one
    assert any("ALIPAY_URL" in r for r in refusals)
    assert any("ALIPAY_APP_ID" in r for r in refusals)
    assert any("HASH_KEYS" in r for r in refusals)
    assert any("ALIPAY_AUTHORIZE_URL" in r for r in refusals)
    _, sim_public = rsa_pair(tmp_path / "var" / "keys", "alipay-sim")
    refusals = _settings(tmp_path, **good, alipay_public_key_file=sim_public).production_refusals()
    assert len(refusals) == 1 and "PUBLIC_KEY_FILE" in refusals[0]
    refusals = _settings(tmp_path, **{**good, "hash_key_id": "h9"}).production_refusals()
    assert len(refusals) == 1 and "HASH_KEY_ID" in refusals[0]
