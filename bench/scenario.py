"""The bench's simulator scenario and configuration files.

Every query needs a phone of its own (a phone gets one query a day), so the
scenario has a subscriber for every phone the run will use, spread over the
four operators by number segment. Companies answer at the README's demo
latencies (10-60 ms) but all synchronously: the figures then measure our
pipeline, not the async company's poll schedule. Channel quotas are roomy,
as in the e2e tests: the bench loads the engine, not the quotas.
"""

from __future__ import annotations

import json
from pathlib import Path

from devstack.stack import ROOT

# One segment per operator (config/number_segments.json).
SEGMENTS = ("138", "186", "133", "192")
OPERATORS = {"138": "cmcc", "186": "cucc", "133": "ctcc", "192": "cbn"}
ID_LAST6 = "12345X"
# The channel's id of the person behind the bench's channel-API calls
# (requester_id, required on every call: a code is bound to it, and a query
# is read back only with it).
REQUESTER = "bench-requester"
BASE_LATENCY_MS = {
    "tencent": 30,
    "alibaba": 40,
    "alipay": 20,
    "baidu": 50,
    "kuaishou": 35,
    "douyin": 40,
    "jd": 60,
    "meituan": 10,
}
# Mini-program users for the HTTP API (reusable demo auth codes).
AUTH_CODES = {f"bench-user-{i}": f"208890000000000{i}" for i in range(1, 5)}


def phone(n: int) -> str:
    segment = SEGMENTS[n % len(SEGMENTS)]
    return f"{segment}{n:08d}"


class PhoneBook:
    """Hands out the scenario's phones, each once."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._next = 0

    def take(self, count: int) -> list[str]:
        if self._next + count > self.size:
            raise RuntimeError(f"the bench scenario has {self.size} phones; {self._next + count} asked")
        taken = [phone(n) for n in range(self._next, self._next + count)]
        self._next += count
        return taken


def write_scenario(path: Path, phones: int) -> Path:
    numbers = [phone(n) for n in range(phones)]
    scenario = {
        "_about": "Written by bench/scenario.py for one bench run.",
        "subscribers": [
            {"phone": p, "id_last6": ID_LAST6, "operator": OPERATORS[p[:3]], "status": "active"} for p in numbers
        ],
        # A few accounts each, as real results have (and so SMS texts of real length).
        "accounts": {
            p: {"tencent": {"微信": 1, "QQ": n % 3}, "alipay": n % 2, "jd": n % 4} for n, p in enumerate(numbers)
        },
        "companies": {
            c: {"latency_ms": ms, "fail_rate": 0.0, "mode": "sync", "down": False} for c, ms in BASE_LATENCY_MS.items()
        },
        "alipay": {"auth_codes": AUTH_CODES},
    }
    path.write_text(json.dumps(scenario, ensure_ascii=False), encoding="utf-8")
    return path


def write_roomy_channels(path: Path) -> Path:
    """config/channels.json with quotas no bench load reaches (and no
    per-requester limits: the load's users each make many queries)."""
    channels = json.loads((ROOT / "config" / "channels.json").read_text(encoding="utf-8"))
    for spec in channels["channels"].values():
        spec["quotas"] = {"*": {"per_second": 1_000_000, "per_day": 1_000_000_000}}
        spec.pop("requester_limits", None)
    path.write_text(json.dumps(channels), encoding="utf-8")
    return path
