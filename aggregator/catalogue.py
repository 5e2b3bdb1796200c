"""The participating companies (id, name, hotline, 解绑与明细查询), from configuration."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from aggregator.policy import CompanyPolicy


@dataclass(frozen=True)
class Enterprise:
    id: str
    name: str
    hotline: str
    detail_and_unbind: str
    policy: CompanyPolicy = field(default_factory=CompanyPolicy)


def load_catalogue(path: Path) -> list[Enterprise]:
    """The companies in order; each row may override `default_policy`."""
    data = json.loads(path.read_text(encoding="utf-8"))
    default = data.get("default_policy", {})
    catalogue = []
    for row in data["enterprises"]:
        row = dict(row)
        policy = CompanyPolicy.from_config(default, row.pop("policy", None))
        catalogue.append(Enterprise(**row, policy=policy))
    ids = [e.id for e in catalogue]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate enterprise id in catalogue")
    return catalogue
