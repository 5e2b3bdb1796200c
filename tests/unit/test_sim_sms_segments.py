"""How many UCS-2 SMS parts the SMS centre simulator counts for a text."""

from __future__ import annotations

import pytest

from simulators.sms_centre import ucs2_segments


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4)],
)
def test_chinese_text(length: int, segments: int) -> None:
    assert ucs2_segments("号" * length) == segments


def test_characters_outside_the_bmp_take_two_units() -> None:
    assert ucs2_segments("😀" * 35) == 1
    assert ucs2_segments("😀" * 35 + "a") == 2
