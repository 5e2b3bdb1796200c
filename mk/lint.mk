# `make lint` (part of `make test`, issue 17): the protos' buf lint and
# breaking-change check (mk/api.mk), then ruff's lint rules and its
# formatter's check, mypy over the gRPC edges and the gateway's models, and
# import-linter's contracts for the architecture (services meet only through
# protos/ and yztc/; nothing imports upward). Settings in pyproject.toml.

.PHONY: lint

lint: install lint-protos
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/lint-imports

# `make test` lints first: a style, type or import-rule finding fails it.
test: lint
