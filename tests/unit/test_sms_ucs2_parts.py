"""Splitting a text into UCS-2 SMS parts with the concatenation UDH."""

from __future__ import annotations

import pytest

from sms_notifier.ucs2_parts import ESM_CLASS_DEFAULT, ESM_CLASS_UDHI, TooLong, split


def _join(parts) -> str:
    body = b"".join(p.short_message[6:] if p.esm_class & ESM_CLASS_UDHI else p.short_message for p in parts)
    return body.decode("utf-16-be")


def test_seventy_characters_are_one_part_without_a_header():
    [part] = split("码" * 70, ref=9)
    assert (part.seq, part.total, part.esm_class) == (1, 1, ESM_CLASS_DEFAULT)
    assert part.short_message == ("码" * 70).encode("utf-16-be")


def test_seventy_one_characters_are_two_parts_of_67_and_4():
    parts = split("码" * 71, ref=200)
    assert [(p.seq, p.total) for p in parts] == [(1, 2), (2, 2)]
    assert [len(p.short_message) for p in parts] == [6 + 134, 6 + 8]
    assert parts[0].short_message[:6] == bytes([0x05, 0x00, 0x03, 200, 2, 1])
    assert parts[1].short_message[:6] == bytes([0x05, 0x00, 0x03, 200, 2, 2])
    assert all(p.esm_class == ESM_CLASS_UDHI for p in parts)
    assert _join(parts) == "码" * 71


def test_a_result_text_of_three_parts_joins_back_exactly():
    text = "【一证通查】" + "腾讯3个、" * 28
    parts = split(text, ref=7)
    assert len(parts) == 3 and all(len(p.short_message) <= 140 for p in parts)
    assert _join(parts) == text


def test_a_surrogate_pair_is_never_split_across_parts():
    text = "a" * 66 + "😀" + "b" * 10  # the emoji's two units would straddle the 67-unit boundary
    parts = split(text, ref=1)
    assert len(parts[0].short_message) == 6 + 66 * 2
    for part in parts:
        part.short_message[6:].decode("utf-16-be")  # each part decodes on its own
    assert _join(parts) == text


def test_the_reference_is_what_the_caller_gives_so_retries_match():
    assert split("x" * 200, ref=42) == split("x" * 200, ref=42)
    with pytest.raises(ValueError):
        split("x", ref=256)


def test_too_many_parts_is_refused():
    with pytest.raises(TooLong):
        split("x" * (67 * 3 + 1), ref=0, max_parts=3)
