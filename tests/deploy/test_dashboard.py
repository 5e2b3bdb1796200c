"""The Grafana dashboard (components/monitoring/dashboards/yztc.json): every
panel's PromQL parses (promtool, on the queries written as recording rules),
names only metrics the services define or the rules record, and the prod
overlay provisions exactly this file for Grafana's sidecar. The names are
checked against the running services' /metrics pages in
tests/e2e/test_metrics_in_use.py. Offline."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.deploy.model import of_kind
from tests.deploy.promql import (
    DASHBOARD,
    as_rule_file,
    dashboard,
    dashboard_panels,
    dashboard_queries,
    metric_names,
    recorded_names,
    source_names,
)
from tests.deploy.test_observability import exported_metric_names


def promtool_check(promtool: Path, rule_file: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(promtool), "check", "rules", str(rule_file)], capture_output=True, text=True, timeout=120
    )


def test_every_query_parses(promtool: Path, tmp_path: Path) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 20
    done = promtool_check(promtool, as_rule_file(queries, tmp_path / "dashboard.rules.yaml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(queries)} rules found" in done.stdout


def test_a_broken_query_does_not_parse(promtool: Path, tmp_path: Path) -> None:
    """Guard: the parse above would catch a typo."""
    done = promtool_check(promtool, as_rule_file({"x": "sum by (company (rate(yztc_x[1m]))"}, tmp_path / "bad.yaml"))
    assert done.returncode != 0


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (company, le) (rate(yztc_a_bucket{company="jd", le="2.0"}[5m]))', {"yztc_a_bucket"}),
        (
            "histogram_quantile(0.99, sum by (le) (rate(x_bucket[$__rate_interval])))".replace(
                "$__rate_interval", "1m"
            ),
            {"x_bucket"},
        ),
        (
            '(sum(rate(a_total{state=~"SENT|by"}[1h])) or vector(0)) / on () group_left (b) sum(c) > bool 1e3',
            {"a_total", "c"},
        ),
        ("min by (role) (yztc_t_seconds - time()) / 86400 and absent(up offset 5m)", {"yztc_t_seconds", "up"}),
        ("yztc:ratio_rate1h / 0.001", {"yztc:ratio_rate1h"}),
    ],
)
def test_metric_names_are_read_from_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_every_metric_is_one_the_services_define_or_the_rules_record() -> None:
    exported = exported_metric_names()
    recorded = recorded_names()
    for title, expr in dashboard_queries().items():
        names = metric_names(expr)
        assert names, f"{title}: selects no metric"
        for name in names:
            if ":" in name:  # level:metric:operations, a recording rule's name
                assert name in recorded, f"{title}: {name} is recorded by no rule"
                continue
            base = name.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum").removesuffix("_total")
            assert base in exported, f"{title}: {name} is not a yztc metric"
        assert all(":" not in name for name in source_names(names)), title


def test_the_dashboard_covers_what_an_sre_watches() -> None:
    rows = [p["title"] for p in dashboard()["panels"] if p["type"] == "row"]
    for area in ("Objectives", "Throughput", "Companies", "SMS pipeline", "Backlog"):
        assert any(title.startswith(area) for title in rows), area
    used = set().union(*(metric_names(e) for e in dashboard_queries().values()))
    for must in (
        "yztc_queries_result_sms_total",
        "yztc_company_call_duration_seconds_bucket",
        "yztc_sms_send_duration_seconds_bucket",
        "yztc_sms_messages_finished_total",
        "yztc_queries_oldest_unfinished_age_seconds",
        "yztc_sms_queue_oldest_pending_age_seconds",
    ):
        assert must in used, must


def test_panels_are_whole() -> None:
    board = dashboard()
    assert board["uid"] and board["title"]
    ids = [p["id"] for p in dashboard_panels()]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in dashboard_panels():
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys()


@pytest.mark.parametrize("overlay", ("dev", "prod"))
def test_prod_provisions_the_dashboard(objects: dict[str, list[dict]], overlay: str) -> None:
    maps = [
        o
        for o in of_kind(objects[overlay], "ConfigMap")
        if o["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    ]
    if overlay == "dev":
        assert not maps
        return
    (config_map,) = maps
    assert config_map["data"]["yztc.json"] == DASHBOARD.read_text(encoding="utf-8")
    assert json.loads(config_map["data"]["yztc.json"])["uid"] == "yztc-overview"
