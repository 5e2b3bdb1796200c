"""yztc/identifiers.py, the one definition of the CONTRACT's identifiers for
both front doors: examples, and properties over generated strings (what is
accepted normalises to a canonical value, normalising is idempotent,
canonical values pass unchanged, a control or format character anywhere is
refused, and the *_PATTERN regular expressions say exactly what is accepted)."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yztc.identifiers import (
    CODE_MAX_LENGTH,
    CODE_PATTERN,
    ID_LAST6_MAX_LENGTH,
    ID_LAST6_PATTERN,
    PHONE_MAX_LENGTH,
    PHONE_PATTERN,
    mask_phone,
    normalise_code,
    normalise_id_last6,
    normalise_phone,
    valid_code,
)

CANONICAL_PHONE = re.compile(r"1[3-9][0-9]{9}")
CANONICAL_ID_LAST6 = re.compile(r"[0-9]{5}[0-9X]")
CANONICAL_CODE = re.compile(r"[0-9]{6}")

# -- examples ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "13800138000",
        "+8613800138000",
        "8613800138000",
        "138 0013 8000",
        "+86 138-0013-8000",
        # issue 17: the IME's full-width space, full-width digits, ＋ and －
        "138\u30000013\u30008000",
        "１３８００１３８０００",
        "1３800138000",
        "＋８６　１３８－００１３－８０００",
    ],
)
def test_phone_forms_normalise(raw):
    assert normalise_phone(raw) == "13800138000"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "12800138000",
        "1380013800",
        "138001380001",
        "1380013800a",
        "+8513800138000",
        "０13800138000",
        13800138000,
        None,
        ["13800138000"],
        "1" * 40,
        "+86",
        "+86+8613800138000",
        # issue 17: control (Cc) and format (Cf) characters
        "13800138000\u001f",
        "138\t0013\t8000",
        "13800138000\n",
        "\x1c13800138000",
        "13800138000\x00",
        "138\u200b00138000",
        "\ufeff13800138000",
        "138\u200e00138000",
        "138\u206000138000",
        # other spaces, dashes and digits that \s, \d or NFKC would take
        "138\u00a00013\u00a08000",
        "138\u20130013\u20138000",
        "138\u20100013\u20108000",
        "١٣٨٠٠١٣٨٠٠٠",
        "¹3800138000",
        "①3800138000",
        "𝟏𝟑𝟖𝟎𝟎𝟏𝟑𝟖𝟎𝟎𝟎",
        "13８00138000\u3000\u3000" + " " * 20,
    ],
)
def test_bad_phones_are_refused(raw):
    assert normalise_phone(raw) is None


def test_id_last6_accepts_x_either_case_and_full_width_and_uppercases():
    assert normalise_id_last6("12345x") == "12345X"
    assert normalise_id_last6("123456") == "123456"
    assert normalise_id_last6("12345Ｘ") == "12345X"
    assert normalise_id_last6("１２３４５ｘ") == "12345X"


@pytest.mark.parametrize(
    "raw",
    [
        "1234X5",
        "12345",
        "1234567",
        "abcdef",
        123456,
        None,
        "12345X\u200b",
        "\ufeff2345X",
        "12345\x00",
        "12345 ",
        "١٢٣٤٥٦",
        "12345×",
        "12345Х",
    ],  # U+00D7 multiplication sign, U+0425 Cyrillic Ha
)
def test_bad_id_last6(raw):
    assert normalise_id_last6(raw) is None


def test_code_is_six_digits_full_width_folded():
    assert valid_code("012345") and normalise_code("012345") == "012345"
    assert normalise_code("０１２３４５") == "012345"
    for bad in ("12345", "12345a", 123456, "١٢٣٤٥٦", "12345\x00", "12345\u200b", " 12345"):
        assert not valid_code(bad)
        assert normalise_code(bad) is None


def test_mask():
    assert mask_phone("13800138000") == "138****8000"


# -- properties ----------------------------------------------------------------------

FULL_WIDTH_DIGITS = "".join(chr(0xFF10 + n) for n in range(10))
# The characters the rules are about, and their look-alikes: separators
# (accepted and not), control (Cc) and format (Cf) characters, digits of
# other forms, the X of other scripts.
RELEVANT = (
    "0123456789"
    + FULL_WIDTH_DIGITS
    + "+＋ \u3000-－Xxｘ"
    + "\t\n\r\x0b\x0c\x1c\x1f\x00\x7f\x85"
    + "\u200b\u200c\u200d\u200e\u2060\ufeff\u00ad"
    + "\u00a0\u2002\u2009\u2010\u2013\u2212"
    + "١٣۸¹①𝟏８"
    + "×Х"
)
CONTROL_OR_FORMAT = st.characters(categories=["Cc", "Cf"])
ANY_TEXT = st.text(alphabet=RELEVANT, max_size=40) | st.text(max_size=40)


def _full_width(text: str) -> st.SearchStrategy[str]:
    """`text` with any of its ASCII digits (and X) written full-width."""
    return st.lists(st.booleans(), min_size=len(text), max_size=len(text)).map(
        lambda wide: "".join(
            chr(ord(c) - 0x30 + 0xFF10) if w and c in "0123456789" else ("Ｘ" if w and c == "X" else c)
            for c, w in zip(text, wide, strict=True)
        )
    )


def _unanchored(pattern: str) -> str:
    assert pattern.startswith("^") and pattern.endswith("$")
    return pattern[1:-1]


def _documented(pattern: str, max_length: int, raw: str) -> bool:
    """What a JSON Schema {"pattern", "maxLength"} admits. fullmatch: Python's
    `$` also matches before a final newline, JSON Schema's (ECMA-262) does not."""
    return len(raw) <= max_length and re.fullmatch(_unanchored(pattern), raw) is not None


def _matching(pattern: str) -> st.SearchStrategy[str]:
    return st.from_regex(_unanchored(pattern), fullmatch=True)


canonical_phones = st.from_regex(CANONICAL_PHONE, fullmatch=True)
canonical_id_last6 = st.from_regex(CANONICAL_ID_LAST6, fullmatch=True)
canonical_codes = st.from_regex(CANONICAL_CODE, fullmatch=True)


@st.composite
def written_phones(draw) -> tuple[str, str]:
    """(canonical, as a person may write it): prefix, separators, full width."""
    phone = draw(canonical_phones)
    prefix = draw(st.sampled_from(["", "+86", "86", "＋８６", "+８6"]))
    separators = st.sampled_from(["", "", "", " ", "\u3000", "-", "－", "  "])
    pieces = [draw(separators)]
    for c in prefix + phone:
        pieces += [c, draw(separators)]
    written = draw(_full_width("".join(pieces)))
    return phone, written


@st.composite
def with_one_inserted(draw, base: st.SearchStrategy[str], inserted: st.SearchStrategy[str]) -> str:
    text, char = draw(base), draw(inserted)
    at = draw(st.integers(0, len(text)))
    return text[:at] + char + text[at:]


@settings(max_examples=500)
@given(ANY_TEXT | written_phones().map(lambda pair: pair[1]))
def test_an_accepted_phone_is_canonical_and_normalising_is_idempotent(raw):
    phone = normalise_phone(raw)
    if phone is not None:
        assert CANONICAL_PHONE.fullmatch(phone) and phone.isascii()
        assert normalise_phone(phone) == phone


@given(canonical_phones)
def test_a_canonical_phone_is_accepted_unchanged(phone):
    assert normalise_phone(phone) == phone


@settings(max_examples=300)
@given(written_phones())
def test_the_written_forms_of_a_phone_normalise_to_it(pair):
    phone, written = pair
    if len(written) <= PHONE_MAX_LENGTH:
        assert normalise_phone(written) == phone


@settings(max_examples=300)
@given(
    with_one_inserted(written_phones().map(lambda pair: pair[1]), CONTROL_OR_FORMAT)
    | with_one_inserted(ANY_TEXT, CONTROL_OR_FORMAT)
)
def test_a_phone_with_a_control_or_format_character_is_refused(raw):
    assert normalise_phone(raw) is None


@settings(max_examples=500)
@given(ANY_TEXT | _matching(PHONE_PATTERN) | written_phones().map(lambda pair: pair[1]))
def test_the_phone_pattern_says_what_is_accepted(raw):
    assert _documented(PHONE_PATTERN, PHONE_MAX_LENGTH, raw) == (normalise_phone(raw) is not None)


@settings(max_examples=300)
@given(
    st.text(alphabet=RELEVANT, min_size=6, max_size=6)
    | st.text(max_size=8)
    | _matching(ID_LAST6_PATTERN)
    | canonical_id_last6.flatmap(_full_width)
    | canonical_id_last6.map(str.lower)
)
def test_id_last6_properties(raw):
    id6 = normalise_id_last6(raw)
    if id6 is not None:
        assert CANONICAL_ID_LAST6.fullmatch(id6) and id6.isascii()
        assert normalise_id_last6(id6) == id6
    assert _documented(ID_LAST6_PATTERN, ID_LAST6_MAX_LENGTH, raw) == (id6 is not None)


@given(canonical_id_last6)
def test_a_canonical_id_last6_is_accepted_unchanged(id6):
    assert normalise_id_last6(id6) == id6


@given(with_one_inserted(canonical_id_last6.flatmap(_full_width), CONTROL_OR_FORMAT))
def test_an_id_last6_with_a_control_or_format_character_is_refused(raw):
    assert normalise_id_last6(raw) is None


@settings(max_examples=300)
@given(
    st.text(alphabet=RELEVANT, min_size=6, max_size=6)
    | st.text(max_size=8)
    | _matching(CODE_PATTERN)
    | canonical_codes.flatmap(_full_width)
)
def test_code_properties(raw):
    code = normalise_code(raw)
    assert valid_code(raw) == (code is not None)
    if code is not None:
        assert CANONICAL_CODE.fullmatch(code) and code.isascii()
        assert normalise_code(code) == code
    assert _documented(CODE_PATTERN, CODE_MAX_LENGTH, raw) == (code is not None)


@given(canonical_codes)
def test_a_canonical_code_is_accepted_unchanged(code):
    assert normalise_code(code) == code


@given(with_one_inserted(canonical_codes.flatmap(_full_width), CONTROL_OR_FORMAT))
def test_a_code_with_a_control_or_format_character_is_refused(raw):
    assert normalise_code(raw) is None


def test_the_folded_characters_are_nfkc_full_width_forms():
    """What is folded is NFKC's folding of the full-width forms, nothing else."""
    for c in FULL_WIDTH_DIGITS + "\u3000＋－Ｘｘ":
        assert unicodedata.east_asian_width(c) in ("F", "W")
        assert unicodedata.normalize("NFKC", c).isascii()
