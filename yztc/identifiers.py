"""The CONTRACT's identifiers: parsing, normalising and masking. The one
definition both front doors use (the gateway's HTTP API and the aggregator's
gRPC channel API), so that they accept exactly the same strings.

Accepted (CONTRACT, Identifiers; issue 17):

- phone: digits, an optional `+86` or `86` prefix, and spaces and hyphens
  anywhere; full-width digits, the full-width space U+3000 (what a Chinese
  IME types in full-width mode), full-width `＋` and `－` folded to ASCII.
  Normalised: 11 ASCII digits `1[3-9]\\d{9}`.
- ID last six: five digits then a digit or `X`, either case, full-width
  folded. Normalised: ASCII, `X` upper case.
- verification code: six digits, full-width folded. Normalised: ASCII.

Anything else is refused: control characters (Cc: tab, newline, U+001F),
format characters (Cf: U+200B, U+FEFF), other spaces and dashes (U+00A0,
U+2013), other digits (Arabic-Indic, superscript, circled, mathematical).
The folding is NFKC's, applied only to the full-width forms above: NFKC of
the whole string would also turn ¹, ① and 𝟏 into 1, and `\\d` matches every
Unicode digit.

Functions return the normalised value, or None for "not of the form"; they
never raise on any input. The *_PATTERN strings say the same in a regular
expression (Python `re`, ECMA-262 and Rust `regex` alike: JSON Schema, the
OpenAPI document), for a string of at most *_MAX_LENGTH characters.
Error texts never echo the input: it may be personal data.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

COMPANY_IDS = ("tencent", "alibaba", "alipay", "baidu", "kuaishou", "douyin", "jd", "meituan")
OPERATOR_IDS = ("cmcc", "cucc", "ctcc", "cbn")

_FULL_WIDTH_DIGITS = "".join(chr(0xFF10 + n) for n in range(10))  # ０..９


def _nfkc(characters: str) -> dict[int, str]:
    """A str.translate table folding each of `characters` as NFKC does."""
    return {ord(c): unicodedata.normalize("NFKC", c) for c in characters}


# U+3000 ideographic space, U+FF0B full-width plus, U+FF0D full-width hyphen-minus.
_PHONE_FOLD = _nfkc(_FULL_WIDTH_DIGITS + "\u3000\uff0b\uff0d")
_ID_LAST6_FOLD = _nfkc(_FULL_WIDTH_DIGITS + "\uff38\uff58")  # Ｘ ｘ
_CODE_FOLD = _nfkc(_FULL_WIDTH_DIGITS)

_PHONE_CHARACTERS = re.compile(r"[0-9+ \-]+")  # after folding; ASCII only
_PHONE = re.compile(r"1[3-9][0-9]{9}")
_ID_LAST6 = re.compile(r"[0-9]{5}[0-9Xx]")
_CODE = re.compile(r"[0-9]{6}")

PHONE_MAX_LENGTH: Final = 32
ID_LAST6_MAX_LENGTH: Final = 6
CODE_MAX_LENGTH: Final = 6

_SEP = r"[ \u3000\-\uFF0D]*"
_DIGIT = r"[0-9\uFF10-\uFF19]"
PHONE_PATTERN: Final = (
    rf"^{_SEP}(?:[+\uFF0B]{_SEP}[8\uFF18]{_SEP}[6\uFF16]{_SEP}|[8\uFF18]{_SEP}[6\uFF16]{_SEP})?"
    rf"[1\uFF11]{_SEP}[3-9\uFF13-\uFF19](?:{_SEP}{_DIGIT}){{9}}{_SEP}$"
)
ID_LAST6_PATTERN: Final = rf"^{_DIGIT}{{5}}[0-9\uFF10-\uFF19Xx\uFF38\uFF58]$"
CODE_PATTERN: Final = rf"^{_DIGIT}{{6}}$"


def normalise_phone(raw: object) -> str | None:
    """A mainland mobile number as 11 ASCII digits, from a string of at most
    32 characters (see the module's docstring for what is accepted)."""
    if not isinstance(raw, str) or len(raw) > PHONE_MAX_LENGTH:
        return None
    folded = raw.translate(_PHONE_FOLD)
    if not _PHONE_CHARACTERS.fullmatch(folded):
        return None
    phone = folded.replace(" ", "").replace("-", "")
    if phone.startswith("+86"):
        phone = phone[3:]
    elif phone.startswith("86") and len(phone) == 13:
        phone = phone[2:]
    return phone if _PHONE.fullmatch(phone) else None


def normalise_id_last6(raw: object) -> str | None:
    """The last six characters of a resident ID as ASCII, `X` upper case."""
    if not isinstance(raw, str) or len(raw) != ID_LAST6_MAX_LENGTH:
        return None
    folded = raw.translate(_ID_LAST6_FOLD)
    return folded.upper() if _ID_LAST6.fullmatch(folded) else None


def normalise_code(raw: object) -> str | None:
    """A verification code as six ASCII digits."""
    if not isinstance(raw, str) or len(raw) != CODE_MAX_LENGTH:
        return None
    folded = raw.translate(_CODE_FOLD)
    return folded if _CODE.fullmatch(folded) else None


def valid_code(raw: object) -> bool:
    """Whether `raw` is a verification code; use normalise_code for its value."""
    return normalise_code(raw) is not None


def mask_phone(phone: str) -> str:
    """138****0000: the form in which a phone is ever shown."""
    return phone[:3] + "****" + phone[-4:]
