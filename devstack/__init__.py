"""The local stack: what `make run`, the end-to-end tests and the benchmark
start (FerretDB, simulators, connectors, aggregator, notifier, gateway)."""
