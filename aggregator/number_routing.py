"""Which operator a number belongs to by its segment (号段), from data."""

from __future__ import annotations

import json
from pathlib import Path


class NumberRouting:
    def __init__(self, segments: dict[str, list[str]]) -> None:
        self._by_prefix: dict[str, str] = {}
        for operator, prefixes in segments.items():
            for prefix in prefixes:
                if prefix in self._by_prefix:
                    raise ValueError(f"segment {prefix} listed twice")
                self._by_prefix[prefix] = operator
        self._lengths = sorted({len(p) for p in self._by_prefix}, reverse=True)

    @classmethod
    def from_file(cls, path: Path) -> NumberRouting:
        return cls(json.loads(path.read_text(encoding="utf-8"))["segments"])

    def operator_for(self, phone: str) -> str | None:
        """The operator of the number's segment; None if no segment matches."""
        for length in self._lengths:
            operator = self._by_prefix.get(phone[:length])
            if operator:
                return operator
        return None
