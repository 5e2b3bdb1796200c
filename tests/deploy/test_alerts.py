"""The alert rules as code: promtool checks them and runs their unit tests
(tests/deploy/alerts.test.yaml: synthetic series, then the alerts that must
fire and those that must stay silent), every alert is tested both ways, and
the PrometheusRule of components/monitoring is generated from the one rules
file. Offline."""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import K8S, ROOT
from tests.deploy.model import of_kind
from tests.deploy.promql import RULES, rules

UNIT_TESTS = Path(__file__).with_name("alerts.test.yaml")
GENERATOR = K8S / "components" / "monitoring" / "prometheus_rule.py"


def promtool_run(promtool: Path, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([str(promtool), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def alert_names() -> set[str]:
    return {rule["alert"] for rule in rules() if "alert" in rule}


def test_promtool_is_the_pinned_release(promtool: Path) -> None:
    """The binary make installed is built from mk/monitoring.mk's version."""
    pinned = next(
        line.split("?=")[1].strip()
        for line in (ROOT / "mk" / "monitoring.mk").read_text().splitlines()
        if line.startswith("PROMETHEUS_VERSION")
    )
    done = subprocess.run(["go", "version", "-m", str(promtool)], capture_output=True, text=True, timeout=60)
    assert f"github.com/prometheus/prometheus\t{pinned}" in done.stdout, done.stdout + done.stderr


def test_promtool_checks_the_rules(promtool: Path) -> None:
    done = promtool_run(promtool, "check", "rules", "--lint=all", "--lint-fatal", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules())} rules found" in done.stdout


def test_promtool_unit_tests_pass(promtool: Path) -> None:
    done = promtool_run(promtool, "test", "rules", str(UNIT_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_unit_tests_can_fail(promtool: Path, tmp_path: Path) -> None:
    """Guard: a case expecting an alert that cannot fire makes promtool fail,
    so the passing run above means something."""
    tests = yaml.safe_load(UNIT_TESTS.read_text(encoding="utf-8"))
    tests["rule_files"] = [str(RULES)]
    silent_case = next(t for t in tests["tests"] if all(not c["exp_alerts"] for c in t["alert_rule_test"]))
    check = silent_case["alert_rule_test"][0]
    check["exp_alerts"] = [{"exp_labels": {"severity": "critical"}}]
    tests["tests"] = [silent_case]
    (tmp_path / "wrong.test.yaml").write_text(yaml.safe_dump(tests), encoding="utf-8")
    done = promtool_run(promtool, "test", "rules", str(tmp_path / "wrong.test.yaml"))
    assert done.returncode != 0 and check["alertname"] in done.stdout + done.stderr


def test_every_alert_is_tested_firing_and_silent() -> None:
    cases = [
        check
        for test in yaml.safe_load(UNIT_TESTS.read_text(encoding="utf-8"))["tests"]
        for check in test["alert_rule_test"]
    ]
    fires = {c["alertname"] for c in cases if c["exp_alerts"]}
    silent = {c["alertname"] for c in cases if not c["exp_alerts"]}
    assert alert_names() - fires == set(), "alerts no unit test sees firing"
    assert alert_names() - silent == set(), "alerts no unit test sees silent"
    assert (fires | silent) - alert_names() == set(), "unit tests of alerts that do not exist"


def test_burn_rate_alerts_use_both_window_pairs() -> None:
    """The SRE workbook's multi-window multi-burn-rate shape: 14.4x over 1h
    and 5m, or 6x over 6h and 30m, on the same error ratio."""
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    burn = [rule for rule in rules() if "slo" in rule.get("labels", {})]
    assert len(burn) >= 5
    for rule in burn:
        expr = " ".join(rule["expr"].split())
        ratio = expr.split("(", 1)[1].split()[0].removesuffix("1h")
        for window, factor in (("1h", "14.4"), ("5m", "14.4"), ("6h", "6"), ("30m", "6")):
            assert f"{ratio}{window} > ({factor} * " in expr, f"{rule['alert']}: {window} at {factor}x"
            assert f"{ratio}{window}" in recorded


def test_no_personal_data_in_labels() -> None:
    """What an alert carries and groups by names companies, our own services
    (their fixed names), certificate roles and deployments: never a phone
    number, ID digits, a query or message id."""
    for rule in rules():
        name = rule.get("alert") or rule["record"]
        assert set(rule.get("labels", {})) <= {"severity", "slo"}, name
        shown = re.findall(r"\$labels\.(\w+)", yaml.safe_dump(rule.get("annotations", {})))
        assert set(shown) <= {"company", "service", "role", "deployment"}, name
        grouped = re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", rule["expr"])
        assert {label.strip() for labels in grouped for label in labels.split(",")} <= {
            "company",
            "service",
            "role",
            "le",
        }, name


def _generator():
    spec = importlib.util.spec_from_file_location("prometheus_rule", GENERATOR)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_prometheus_rule_is_generated_from_the_rules_file() -> None:
    generator = _generator()
    assert generator.TARGET.read_text(encoding="utf-8") == generator.render(), (
        "components/monitoring/prometheus-rule.yaml is stale: run `make prometheus-rule`"
    )


def test_the_generator_notices_a_change(tmp_path: Path) -> None:
    changed = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    changed["groups"][-1]["rules"][0]["for"] = "99m"
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(changed), encoding="utf-8")
    assert _generator().render(tmp_path / "rules.yaml") != _generator().render()


@pytest.mark.parametrize("overlay", ("dev", "prod"))
def test_both_forms_ship(objects: dict[str, list[dict]], overlay: str) -> None:
    """Every overlay carries the plain rules (ConfigMap yztc-alert-rules);
    prod, with the Prometheus Operator, the PrometheusRule too, labelled for
    its Prometheus: both equal to the rules file."""
    source = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    (config_map,) = [
        o for o in of_kind(objects[overlay], "ConfigMap") if o["metadata"]["name"].startswith("yztc-alert-rules")
    ]
    assert yaml.safe_load(config_map["data"]["yztc.rules.yaml"]) == source
    prometheus_rules = of_kind(objects[overlay], "PrometheusRule")
    if overlay == "dev":
        assert not prometheus_rules, "dev clusters need not run the operator"
        return
    (rule,) = prometheus_rules
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"] == source
    assert rule["metadata"]["labels"]["release"], "the label its Prometheus selects rules by"
    assert rule["metadata"]["namespace"] == "yztc"
