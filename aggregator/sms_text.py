"""The texts of the SMS we send (CONTRACT "SMS"): the verification code and the result.

Pure functions on typed values; the engine and the intake send what they return.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aggregator.catalogue import Enterprise
from yztc.identifiers import mask_phone

SIGNATURE = "【一证通查】"
CODE_VALID_MINUTES = 5

# The multipart limit (CONTRACT "SMS"): the notifier sends at most 10 parts
# (YZTC_NOTIFIER_MAX_PARTS' default) of 67 UTF-16 code units each (UCS-2 with
# the 6-byte concatenation header, 3GPP TS 23.040 §9.2.3.24.1). The result
# text is kept within it by dropping per-app splits, never counts.
RESULT_MAX_PARTS = 10
UNITS_PER_PART = 67
RESULT_MAX_UNITS = RESULT_MAX_PARTS * UNITS_PER_PART

# An app name comes from a company: it goes out from the government's port
# 10699000, so only letters, digits and a few joiners pass (no dots, colons or
# slashes: no link can be spelt), at most 12 characters. A split with any name
# that fails is left out; the company's total still shows.
_APP_NAME = re.compile(r"\w[\w ·+\-]{0,11}")  # \w: Unicode letters (微信), digits, "_"


@dataclass(frozen=True)
class AppCount:
    """One app's share of a company's count (company_connector.proto `AppAccounts`)."""

    name: str
    count: int


def verification_text(code: str) -> str:
    """The code SMS: the code, its validity, and the warning not to share it (CONTRACT "SMS"; review I1)."""
    return f"{SIGNATURE}您的验证码为{code}，{CODE_VALID_MINUTES}分钟内有效。验证码请勿告知他人。如非本人操作，请忽略本短信。"


def _units(text: str) -> int:
    """UTF-16 code units: what a UCS-2 SMS part counts."""
    return len(text.encode("utf-16-le")) // 2


def _split(total: int, apps: Sequence[AppCount]) -> str:
    """`（微信1个，QQ2个）`, or "" when there is nothing safe or useful to show."""
    if total <= 0 or not apps:
        return ""
    if any(not _APP_NAME.fullmatch(app.name) or app.count < 0 for app in apps):
        return ""
    return "（" + "，".join(f"{app.name}{app.count}个" for app in apps) + "）"


def result_text(
    phone: str,
    catalogue: Sequence[Enterprise],
    counts: Mapping[str, int | None],
    apps: Mapping[str, Sequence[AppCount]] | None = None,
    max_units: int = RESULT_MAX_UNITS,
) -> str:
    """The result SMS: `counts[id]` is the company's count, or None if it never
    answered; `apps[id]` its per-app split, if it gave one (`腾讯3个（微信1个，QQ2个）`).

    Within `max_units` UTF-16 code units (the multipart limit): when the splits
    would not fit, they are dropped from the last company backwards until the
    text fits; the counts themselves are always all there.
    """
    apps = apps or {}
    splits: dict[str, str] = {}
    for enterprise in catalogue:
        count = counts.get(enterprise.id)
        if count is not None:
            splits[enterprise.id] = _split(count, apps.get(enterprise.id, ()))

    def render() -> str:
        parts = []
        for enterprise in catalogue:
            count = counts.get(enterprise.id)
            if count is None:
                parts.append(f"{enterprise.name}暂未返回")
            else:
                parts.append(f"{enterprise.name}{count}个{splits.get(enterprise.id, '')}")
        return (
            f"{SIGNATURE}您查询的号码{mask_phone(phone)}关联的互联网账号数量："
            + "，".join(parts)
            + "。如对结果有异议，请在一证通查“解绑与明细查询”中查看各企业的明细查询与解绑方式。"
        )

    text = render()
    for enterprise in reversed(catalogue):
        if _units(text) <= max_units:
            break
        if splits.get(enterprise.id):
            splits[enterprise.id] = ""
            text = render()
    return text
