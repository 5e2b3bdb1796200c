"""OpenTelemetry set-up: one tracer provider per process, exporter chosen by
settings, and the ecosystem's instrumentations for gRPC, aiohttp and PyMongo
so trace context crosses every hop.

Call `setup_telemetry` before building servers, channels, aiohttp apps or the
Mongo client: the instrumentations wrap constructors.
"""
from __future__ import annotations

import sys
from typing import TextIO

from opentelemetry import trace
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor
from opentelemetry.instrumentation.grpc import (
    GrpcAioInstrumentorClient,
    GrpcAioInstrumentorServer,
    filters,
)
from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

from yztc.settings import CommonSettings

_provider: TracerProvider | None = None
_out: TextIO | None = None


def setup_telemetry(service: str, settings: CommonSettings) -> None:
    global _provider, _out
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if settings.traces_exporter == "console":
        # One file per service ("{service}" in the path), so processes never interleave lines.
        path = settings.traces_file.format(service=service)
        _out = open(path, "a", encoding="utf-8") if path else sys.stderr
        exporter = ConsoleSpanExporter(
            out=_out, formatter=lambda span: span.to_json(indent=None) + "\n"
        )
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=200))
    elif settings.traces_exporter == "otlp":
        # Imported only when used: it pulls in requests, which other set-ups need not load.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _provider = provider

    if settings.metrics_port:
        # Prometheus scrape endpoint (opentelemetry-exporter-prometheus).
        from opentelemetry import metrics
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, addr=settings.metrics_host)
        metrics.set_meter_provider(
            MeterProvider(resource=provider.resource, metric_readers=[PrometheusMetricReader()])
        )

    # Health probes and reflection would flood traces; they are not work.
    not_plumbing = filters.negate(
        filters.any_of(filters.health_check(), filters.service_prefix("grpc.reflection"))
    )
    GrpcAioInstrumentorServer().instrument(filter_=not_plumbing)
    GrpcAioInstrumentorClient().instrument(filter_=not_plumbing)
    AioHttpServerInstrumentor().instrument()
    AioHttpClientInstrumentor().instrument()
    PymongoInstrumentor().instrument()


def shutdown_telemetry() -> None:
    if _provider is not None:
        _provider.shutdown()
    if _out is not None and _out is not sys.stderr:
        _out.close()
