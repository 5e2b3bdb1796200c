"""The participating companies (id, name, hotline, 解绑与明细查询), from configuration."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Enterprise:
    id: str
    name: str
    hotline: str
    detail_and_unbind: str


def load_catalogue(path: Path) -> list[Enterprise]:
    rows = json.loads(path.read_text(encoding="utf-8"))["enterprises"]
    catalogue = [Enterprise(**row) for row in rows]
    ids = [e.id for e in catalogue]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate enterprise id in catalogue")
    return catalogue
