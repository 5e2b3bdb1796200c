"""Writes prometheus-rule.yaml (beside this file): the PrometheusRule of the
Prometheus Operator whose spec is base/alerts.rules.yaml, the one source of
yztc's rules. Run `make prometheus-rule` after editing the rules;
tests/deploy/test_alerts.py fails while the two differ.

    python deploy/k8s/components/monitoring/prometheus_rule.py [--check]
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent.parent / "base" / "alerts.rules.yaml"
TARGET = HERE / "prometheus-rule.yaml"

HEADER = """\
# GENERATED from deploy/k8s/base/alerts.rules.yaml by prometheus_rule.py
# (`make prometheus-rule`): edit the rules there, never here.
"""


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PromQL) as literal blocks, as people write them."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render(source: Path = SOURCE) -> str:
    """The PrometheusRule manifest (YAML text) for the rules in `source`."""
    rules = yaml.safe_load(source.read_text(encoding="utf-8"))
    manifest = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        # The label the cluster's Prometheus selects rules by is the
        # component's to add (kustomization.yaml, SITE).
        "metadata": {"name": "yztc"},
        "spec": {"groups": rules["groups"]},
    }
    return HEADER + yaml.dump(manifest, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if TARGET.read_text(encoding="utf-8") != text:
            print(f"{TARGET} is stale: run `make prometheus-rule`", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
