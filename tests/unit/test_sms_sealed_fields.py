"""The destination and text sealed with AES-GCM under a key id, bound to the message id."""

from __future__ import annotations

import base64

import pytest

from sms_notifier.sealed_fields import Sealer, SealError, decode_key

K1, K2 = bytes(range(32)), bytes(range(1, 33))


def test_round_trip_and_nothing_readable_in_the_box():
    sealer = Sealer({"k1": K1}, "k1")
    box = sealer.seal("code:1", "13800138000", "您的验证码为123456")
    assert box["kid"] == "k1"
    assert "13800138000" not in repr(box) and "123456" not in repr(box)
    assert sealer.open("code:1", box) == ("13800138000", "您的验证码为123456")


def test_bound_to_its_message_id_and_tamper_evident():
    sealer = Sealer({"k1": K1}, "k1")
    box = sealer.seal("code:1", "13800138000", "x")
    with pytest.raises(SealError):
        sealer.open("code:2", box)
    raw = bytearray(base64.b64decode(box["ct"]))
    raw[-1] ^= 1
    with pytest.raises(SealError):
        sealer.open("code:1", {"kid": "k1", "ct": base64.b64encode(bytes(raw)).decode()})


def test_key_rotation_old_boxes_still_open_new_ones_use_the_new_key():
    old = Sealer({"k1": K1}, "k1").seal("m", "13800138000", "x")
    rotated = Sealer({"k1": K1, "k2": K2}, "k2")
    assert rotated.open("m", old) == ("13800138000", "x")
    assert rotated.seal("m", "1", "y")["kid"] == "k2"
    with pytest.raises(SealError):
        Sealer({"k2": K2}, "k2").open("m", old)


def test_keys_must_be_256_bit_base64():
    assert decode_key(base64.b64encode(K1).decode()) == K1
    for bad in ("not base64!", base64.b64encode(b"short").decode()):
        with pytest.raises(ValueError):
            decode_key(bad)
    with pytest.raises(ValueError):
        Sealer({"k1": K1}, "k9")
