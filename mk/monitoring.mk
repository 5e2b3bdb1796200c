# Alerts and dashboards (deploy/k8s/base/alerts.rules.yaml, components/monitoring):
# promtool checks the rules and runs their unit tests (tests/deploy/test_alerts.py,
# tests/deploy/test_dashboard.py), installed with `go install` into $(GOBIN_DIR)
# and reused while its version is the one below.
#
# v0.316.0 (Prometheus 3's module versioning) is the newest the Go module proxy
# serves whose go.mod this machine's Go 1.26 accepts (go 1.26.7); it has no
# replace directives, so `go install ...@version` builds it as released.

# Built without Prometheus's service-discovery plugins (its own build tag
# `remove_all_sd`, plugins/plugin_*.go): promtool's rule checks and tests do
# not use them, and without their cloud SDKs the first build takes about 2.5
# minutes on 2 cores instead of about 9.
PROMETHEUS_VERSION ?= v0.316.0
PROMTOOL_TAGS  := remove_all_sd
PROMTOOL       := $(GOBIN_DIR)/promtool
PROMTOOL_STAMP := $(TOOLS)/.promtool-$(PROMETHEUS_VERSION)-$(PROMTOOL_TAGS)
PROMETHEUS_RULE := deploy/k8s/components/monitoring/prometheus-rule.yaml

.PHONY: promtool prometheus-rule alerts-check

install: promtool

promtool: $(PROMTOOL_STAMP)
$(PROMTOOL_STAMP):
	mkdir -p $(GOBIN_DIR)
	GOBIN=$(GOBIN_DIR) go install -tags $(PROMTOOL_TAGS) github.com/prometheus/prometheus/cmd/promtool@$(PROMETHEUS_VERSION)
	touch $@

# The PrometheusRule, generated from the one source of the rules.
prometheus-rule: $(PROMETHEUS_RULE)
$(PROMETHEUS_RULE): deploy/k8s/base/alerts.rules.yaml deploy/k8s/components/monitoring/prometheus_rule.py .venv/.installed
	$(PY) deploy/k8s/components/monitoring/prometheus_rule.py

# promtool check + unit tests of the rules, and the dashboard's PromQL. Offline.
alerts-check: install
	$(PY) -m pytest -q tests/deploy/test_alerts.py tests/deploy/test_dashboard.py
