"""aggregator/request_rules.py without I/O: the requester_id every channel
call carries, the query ids a GetQuery may name, who may see a query, and
the tag that binds a code to its requester (with phone_rules.judge_code)."""

from __future__ import annotations

import datetime as dt

import pytest

from aggregator import request_rules
from aggregator.phone_rules import CODE_TTL, Code, Event, Phone, apply, judge_code
from yztc.errors import ServiceError
from yztc.keyed_hashes import KeyedHasher

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
KEY = KeyedHasher({"h1": b"k" * 32}, "h1")


@pytest.mark.parametrize(
    "requester",
    [
        "2088000000000001",  # an Alipay user id
        "open:a1B2c3",  # an Alipay open id as the gateway keys it
        "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",  # a WeChat openid
        "123e4567-e89b-12d3-a456-426614174000",
        "x",
        "!" * 128,
        "~",
    ],
)
def test_requester_ids_of_the_form_are_taken_as_given(requester):
    assert request_rules.requester_id(requester) == requester


@pytest.mark.parametrize(
    "requester",
    [
        "",
        "x" * 129,
        "x" * 4_000_000,  # issue 13's case: a 4 MB requester_id
        "user 1",  # space
        "user\t1",
        "user\n1",
        "user\x00",
        "用户1",  # not ASCII
        "ｕｓｅｒ",  # full-width
        "user\u200b",  # format character
        "\x7f",
    ],
)
def test_requester_ids_not_of_the_form_are_invalid_argument(requester):
    with pytest.raises(ServiceError) as caught:
        request_rules.requester_id(requester)
    assert caught.value.code == "INVALID_ARGUMENT"
    assert caught.value.kind.grpc.name == "INVALID_ARGUMENT"
    assert requester not in caught.value.message or requester == ""  # never echoed


def test_a_requester_id_that_is_not_a_string_is_invalid_argument():
    with pytest.raises(ServiceError) as caught:
        request_rules.requester_id(None)
    assert caught.value.code == "INVALID_ARGUMENT"


def test_the_length_limit_is_what_the_proto_and_readme_say():
    assert request_rules.REQUESTER_ID_MAX_LENGTH == 128
    assert request_rules.QUERY_ID_MAX_LENGTH == 64


@pytest.mark.parametrize("query_id", ["0123456789abcdef0123456789abcdef", "q1", "A_b-9", "a" * 64])
def test_query_ids_of_our_form_name_a_query(query_id):
    assert request_rules.names_a_query(query_id)


@pytest.mark.parametrize("query_id", ["", "a" * 65, "a" * 4_000_000, "../x", "q 1", "q1\n", "查询", None])
def test_other_query_ids_name_none(query_id):
    assert not request_rules.names_a_query(query_id)


def test_a_query_is_seen_only_by_its_channel_and_requester():
    assert request_rules.may_see("wechat-demo", "u1", "wechat-demo", "u1")
    assert not request_rules.may_see("wechat-demo", "u1", "wechat-demo", "u2")
    assert not request_rules.may_see("wechat-demo", "u1", "alipay-gateway", "u1")
    # Purged (retention removed the requester) or made without one: nobody.
    assert not request_rules.may_see("wechat-demo", "", "wechat-demo", "")
    assert not request_rules.may_see("wechat-demo", "", "wechat-demo", "u1")


def test_the_requester_tag_is_keyed_and_tells_channels_apart():
    tag = request_rules.requester_tag(KEY, "wechat-demo", "u1")
    kid, _, digest = tag.partition(".")
    assert kid == "h1" and len(digest) == 32 and int(digest, 16) >= 0
    assert tag == request_rules.requester_tag(KEY, "wechat-demo", "u1")
    assert tag != request_rules.requester_tag(KEY, "alipay-gateway", "u1")
    assert tag != request_rules.requester_tag(KEY, "wechat-demo", "u2")
    assert tag != request_rules.requester_tag(KeyedHasher({"h1": b"j" * 32}, "h1"), "wechat-demo", "u1")
    assert "u1" not in tag and "wechat" not in tag
    # The separator keeps ("a", "b\0c") and ("a\0b", "c") apart.
    assert request_rules.requester_tag(KEY, "a", "b\0c") != request_rules.requester_tag(KEY, "a\0b", "c")


def test_a_tag_made_before_a_key_rotation_is_still_recognised():
    """Rotation (review L6): the new key writes, and a tag read back is
    compared under the key it names, so who asked is still known."""
    before = request_rules.requester_tag(KEY, "wechat-demo", "u1")
    rotated = KeyedHasher({"h1": b"k" * 32, "h2": b"n" * 32}, "h2")
    after = request_rules.requester_tag(rotated, "wechat-demo", "u1")
    assert after.startswith("h2.") and after != before
    assert request_rules.requester_tag(rotated, "wechat-demo", "u1", before) == before
    assert request_rules.may_see(
        "wechat-demo", before, "wechat-demo", request_rules.requester_tag(rotated, "wechat-demo", "u1", before)
    )
    assert not request_rules.may_see(
        "wechat-demo", before, "wechat-demo", request_rules.requester_tag(rotated, "wechat-demo", "u2", before)
    )
    # Every configured key, the current first (per-requester quota slots).
    assert request_rules.requester_tags(rotated, "wechat-demo", "u1") == [after, before]
    # Once the old key is gone, its tags match nobody.
    gone = KeyedHasher({"h2": b"n" * 32}, "h2")
    assert request_rules.requester_tag(gone, "wechat-demo", "u1", before) != before


def _phone_with_code_for(owner: str) -> Phone:
    return apply(Phone("h"), Event("code", NOW, code=Code("c1", "right", NOW + CODE_TTL, owner=owner)))


def test_a_code_answers_only_to_the_requester_that_asked_for_it():
    mine = request_rules.requester_tag(KEY, "wechat-demo", "u1")
    theirs = request_rules.requester_tag(KEY, "wechat-demo", "u2")
    phone = _phone_with_code_for(mine)
    assert judge_code(phone, "right", NOW, mine) == "right"
    assert judge_code(phone, "wrong", NOW, mine) == "wrong"
    # Anyone else: no live code for them, right or wrong guess alike
    # (nothing compared, so nothing to count and nothing learnt).
    assert judge_code(phone, "right", NOW, theirs) == "dead"
    assert judge_code(phone, "wrong", NOW, theirs) == "dead"


def test_another_requesters_refusals_leave_the_code_alive():
    mine = request_rules.requester_tag(KEY, "wechat-demo", "u1")
    phone = _phone_with_code_for(mine)
    # The rule the intake follows: only a "wrong" verdict is claimed as an
    # attempt; another requester's guesses are "dead" and claim nothing, so
    # the owner still has every attempt.
    for _ in range(5):
        assert judge_code(phone, "guess", NOW, request_rules.requester_tag(KEY, "wechat-demo", "attacker")) == "dead"
    assert phone.code is not None and phone.code.failures == 0
    assert judge_code(phone, "right", NOW, mine) == "right"


def test_a_code_stored_before_codes_were_bound_answers_to_no_requester():
    unbound = _phone_with_code_for("")
    assert judge_code(unbound, "right", NOW, request_rules.requester_tag(KEY, "wechat-demo", "u1")) == "dead"
