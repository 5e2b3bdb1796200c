"""PromQL as the monitoring tests read it: the metric names an expression
selects, every expression of the rules and of the dashboard, Grafana's
variables replaced so that promtool parses them, and the names the services
export read from their /metrics pages."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from tests.deploy.conftest import K8S

RULES = K8S / "base" / "alerts.rules.yaml"
DASHBOARD = K8S / "components" / "monitoring" / "dashboards" / "yztc.json"

# Metrics of other exporters the rules rely on, by prefix: the ingress
# controller, kube-state-metrics, the OpenTelemetry Collector.
EXTERNAL_PREFIXES = ("nginx_ingress_controller_", "kube_", "otelcol_")

_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "inf",
        "nan",
        "start",
        "end",
    }
)
# Grafana's built-in variables, as a range promtool accepts.
_GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1d"}


def metric_names(expr: str) -> set[str]:
    """The metric names `expr` selects (not functions, keywords, label names
    or values, durations or numbers). promtool has checked the syntax first."""
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', expr)  # string literals
    text = re.sub(r"#[^\n]*", "", text)  # comments
    text = re.sub(r"\{[^{}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\[\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", text)  # label lists
    names = set()
    for match in re.finditer(r"(?<![\w.$])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?", text):
        word, call = match[1], match[2]
        if call or word.lower() in _KEYWORDS:
            continue
        names.add(word)
    return names


def rules() -> list[dict]:
    """Every rule (recording and alerting) of the one rules file."""
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def recorded_names() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def dashboard_panels() -> list[dict]:
    """Every panel, those inside collapsed rows too."""
    found = []
    for panel in dashboard()["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def dashboard_queries() -> dict[str, str]:
    """ "<panel title> / <refId>" -> its PromQL, Grafana's variables replaced."""
    queries = {}
    for panel in dashboard_panels():
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in _GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            queries[f"{panel['title']} / {target['refId']}"] = expr
    return queries


def as_rule_file(queries: dict[str, str], path: Path) -> Path:
    """The queries as recording rules, for `promtool check rules` to parse."""
    records = [{"record": f"dashboard:query_{i}", "expr": expr} for i, expr in enumerate(queries.values())]
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}), encoding="utf-8")
    return path


def exposed_names(page: str) -> set[str]:
    """Metric names of a Prometheus text exposition (/metrics page): every
    sample's name, so histograms give _bucket, _count and _sum."""
    names = set()
    for line in page.splitlines():
        if line and not line.startswith("#"):
            names.add(re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line)[0])
    return names


def source_names(names: set[str]) -> set[str]:
    """Names with recording rules replaced by the metrics they are made of."""
    by_record = {rule["record"]: rule["expr"] for rule in rules() if "record" in rule}
    resolved: set[str] = set()
    pending = set(names)
    while pending:
        name = pending.pop()
        if name in by_record:
            pending |= metric_names(by_record[name]) - resolved
        else:
            resolved.add(name)
    return resolved
