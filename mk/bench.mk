# `make bench` (issues 9, 12 and 14): the pipeline measured against this
# machine's own ceilings in one run; results in bench/results/ (<date>.json,
# latest.json with issue 12's keys, issue 14's SMS figures for SMPP 3.4 and
# CMPP 3.0 (bench/sms_protocols.py) and the `config` stamp, latest.md with
# each target and whether it was met, latest.png), the headlines printed
# last. 30-45 minutes on 2 cores, most of it making the 20,000 open
# queries of the backlog measurement. `make bench BENCH_ARGS=--profile` also
# py-spies the stack's processes during the end-to-end load
# (bench/results/profiles/).
#
# wrk (the HTTP load, Lua-scripted) comes from Debian's packages, installed
# when missing; without it the bench falls back to its Python load client.
# matplotlib (the plot, also needed by the smoke run in `make test`) and
# py-spy come pinned from bench/requirements.txt into .venv.

BENCH_ARGS ?=
BENCH_STAMP := .venv/.bench-installed

.PHONY: bench bench-smoke wrk

install: $(BENCH_STAMP)

$(BENCH_STAMP): .venv/.installed bench/requirements.txt
	$(PIP) install --quiet -c constraints.txt -r bench/requirements.txt
	touch $@

wrk:
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }

bench: install wrk
	$(PY) -m bench $(BENCH_ARGS)

# The tiny run `make test` does (tests/e2e/test_bench_smoke.py), results in a
# temporary folder: about a minute, figures meaningless. `make test` also
# pins the round trips per query (tests/e2e/test_round_trips.py).
bench-smoke: install
	$(PY) -m bench --smoke --results $$(mktemp -d)
