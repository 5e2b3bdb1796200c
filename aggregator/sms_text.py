"""The texts of the SMS we send (CONTRACT "SMS"): the verification code and the result."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aggregator.catalogue import Enterprise
from yztc.identifiers import mask_phone

SIGNATURE = "【一证通查】"
CODE_VALID_MINUTES = 5


def verification_text(code: str) -> str:
    return f"{SIGNATURE}您的验证码为{code}，{CODE_VALID_MINUTES}分钟内有效。如非本人操作，请忽略本短信。"


def result_text(phone: str, catalogue: Sequence[Enterprise], counts: Mapping[str, int | None]) -> str:
    """`counts[id]` is the company's count, or None if it never answered."""
    parts = []
    for enterprise in catalogue:
        count = counts.get(enterprise.id)
        parts.append(f"{enterprise.name}暂未返回" if count is None else f"{enterprise.name}{count}个")
    return (
        f"{SIGNATURE}您查询的号码{mask_phone(phone)}关联的互联网账号数量："
        + "，".join(parts)
        + "。如对结果有异议，请在一证通查“解绑与明细查询”中查看各企业的明细查询与解绑方式。"
    )
