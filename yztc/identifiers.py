"""The CONTRACT's identifiers: parsing, normalising and masking.

Returned values are normalised; `None` means "not of the form". Digits are
ASCII only (re.ASCII: a plain digit class would take full-width and Arabic-Indic digits).
Error texts never echo the input: it may be personal data.
"""
from __future__ import annotations

import re

_PHONE = re.compile(r"1[3-9]\d{9}", re.ASCII)
_ID_LAST6 = re.compile(r"\d{5}[\dXx]", re.ASCII)
_CODE = re.compile(r"\d{6}", re.ASCII)
_SEPARATORS = re.compile(r"[\s\-]")

COMPANY_IDS = ("tencent", "alibaba", "alipay", "baidu", "kuaishou", "douyin", "jd", "meituan")
OPERATOR_IDS = ("cmcc", "cucc", "ctcc", "cbn")


def normalise_phone(raw: object) -> str | None:
    """A mainland mobile number as 11 digits; accepts +86/86 prefixes, spaces, hyphens."""
    if not isinstance(raw, str) or len(raw) > 32:
        return None
    phone = _SEPARATORS.sub("", raw)
    if phone.startswith("+86"):
        phone = phone[3:]
    elif phone.startswith("86") and len(phone) == 13:
        phone = phone[2:]
    return phone if _PHONE.fullmatch(phone) else None


def normalise_id_last6(raw: object) -> str | None:
    if not isinstance(raw, str) or not _ID_LAST6.fullmatch(raw):
        return None
    return raw.upper()


def valid_code(raw: object) -> bool:
    return isinstance(raw, str) and _CODE.fullmatch(raw) is not None


def mask_phone(phone: str) -> str:
    """138****0000: the form in which a phone is ever shown."""
    return phone[:3] + "****" + phone[-4:]
