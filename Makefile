# yztc: the two commands are `make run` and `make test`; both do all set-up.
# Everything installed lives in the checkout: .venv/ (Python), .tools/ (Go
# binaries), var/ (data, keys, PKI of the local stack). Each step is reused
# when already done.

PYTHON_VERSION ?= 3.11
PY      := .venv/bin/python
PIP     := .venv/bin/pip
TOOLS   := $(CURDIR)/.tools
GOBIN_DIR := $(TOOLS)/bin
FERRETDB := $(GOBIN_DIR)/ferretdb
PROTOS  := $(wildcard protos/yztc/v1/*.proto)
STUBS_STAMP := yztc/v1/.generated

export GOTOOLCHAIN ?= local
export GOFLAGS ?= -buildvcs=false

.PHONY: install install-run protos ferretdb run test test-acceptance test-unit test-integration test-e2e clean

# What `make run` needs: the virtualenv, the stubs, FerretDB and grpcurl (the
# README's walk-through). `install` is that and every test tool the mk/
# fragments add (Chromium through apt, the Java and Node peers, the k8s and
# lint tools): `make run` on a fresh machine does not wait for them.
install-run: .venv/.installed protos ferretdb grpcurl

install: install-run

.venv/.installed: pyproject.toml constraints.txt
	python$(PYTHON_VERSION) -m venv .venv
	$(PIP) install --quiet -c constraints.txt -e '.[dev]'
	touch $@

protos: $(STUBS_STAMP)

# Generated stubs are not committed: they are made here, from the pinned
# grpcio-tools, with .pyi type stubs beside them.
$(STUBS_STAMP): .venv/.installed $(PROTOS)
	rm -f yztc/v1/*_pb2*.py yztc/v1/*_pb2*.pyi
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=. --pyi_out=. --grpc_python_out=. $(PROTOS)
	touch $@

ferretdb: $(FERRETDB)

# Our own tiny main module embeds FerretDB v1.24.2 (see tools/ferretdb/main.go
# for why not `go install .../cmd/ferretdb`), built from the vendored module
# with one file replaced (tools/ferretdb/README.md says which and why).
$(FERRETDB): tools/ferretdb/main.go tools/ferretdb/go.mod tools/ferretdb/go.sum tools/ferretdb/overlay.json tools/ferretdb/patches/metadata.go tools/ferretdb/lazylog.go
	mkdir -p $(GOBIN_DIR)
	cd tools/ferretdb && go mod vendor && go build -mod=vendor -overlay overlay.json -o $(FERRETDB) .

run: install-run
	$(PY) -m devstack

test: install
	$(PY) -m pytest -q -m "not acceptance" tests

test-acceptance: install
	$(PY) -m pytest -q -m acceptance tests

test-unit: install
	$(PY) -m pytest -q tests/unit

test-integration: install
	$(PY) -m pytest -q tests/integration

test-e2e: install
	$(PY) -m pytest -q tests/e2e

clean:
	rm -rf var/ .tools/ .venv/ yztc/v1/*_pb2*.py yztc/v1/*_pb2*.pyi $(STUBS_STAMP)

# Tool and feature recipes by area (mk/<area>.mk); each may add prerequisites
# to `install` and targets of its own.
-include mk/*.mk
