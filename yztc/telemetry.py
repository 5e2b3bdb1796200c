"""OpenTelemetry set-up, and trace context carried by hand across our hops.

Off (`YZTC_TRACES_EXPORTER=none`, the default) installs nothing: no SDK
tracer provider, no instrumentor, so the OpenTelemetry API stays a no-op and
every helper below returns at its first line. On (`console` or `otlp`), an SDK
provider samples at the head, `ParentBased(TraceIdRatioBased(ratio))`: the
root span (the gateway's request span, or a service's own root such as the
aggregator's round) decides, and every hop below follows the parent.

No gRPC or aiohttp instrumentor is installed even then: the grpc.aio
interceptors cost 20-35 % per RPC even for unsampled calls
(../shared/notes/throughput-design.md §2.1). Instead W3C trace context
(`traceparent`, `tracestate`) travels only with sampled work:

- a client adds `metadata=outgoing_metadata()` to a gRPC call, or
  `headers=outgoing_headers()` to an HTTP request;
- a servicer method is wrapped in `@rpc_span(SERVICE)` (or uses
  `with server_span(context, name):`), which starts a SERVER span only when
  the call brought a `traceparent`.

Only our own services' trace context is continued (review L1): a caller
whose client certificate is a channel's (`spiffe://yztc/channel/...`), not
one of our services' (`spiffe://yztc/service/...`), gets a new trace, linked
to its span but never under its trace id, so a channel neither chooses which
of our calls are recorded nor has its ids stored with a query and sent on to
partners. The gateway starts a new trace for every Internet request
(gateway.middlewares.trace_request). Baggage is never read nor sent: only the
W3C `traceparent`/`tracestate` are, whatever OTEL_PROPAGATORS says.

PyMongo command spans are for debugging only (`YZTC_TRACE_DB=1`).

Call `setup_telemetry` before building the Mongo client (the PyMongo
instrumentation registers a global command listener).
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, TextIO, TypeVar

import grpc
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from yztc.settings import CommonSettings
from yztc.tls import SERVICE_PREFIX, is_plaintext, peer_certificate

# Set by setup_telemetry when an exporter is configured; None means off. Every
# helper tests it first, so "off" costs one global read per call.
_tracer: trace.Tracer | None = None
_provider: Any = None  # opentelemetry.sdk.trace.TracerProvider, imported only when on
_out: TextIO | None = None

# The carrier keys of W3C Trace Context; gRPC metadata keys are lower case.
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

_NO_OP_TRACER = trace.NoOpTracer()
# W3C Trace Context alone: never the global propagator, which by default
# (OTEL_PROPAGATORS=tracecontext,baggage) would read and send baggage.
_W3C = TraceContextTextMapPropagator()

Metadata = tuple[tuple[str, str], ...]
Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


def setup_telemetry(service: str, settings: CommonSettings) -> None:
    """Installs tracing as `settings` say (see the module docstring) and, when
    `metrics_port` is set, the Prometheus metrics endpoint. `service` becomes
    the `service.name` resource attribute and fills "{service}" in
    `traces_file`."""
    global _tracer, _provider, _out
    if settings.metrics_port:
        _setup_metrics(service, settings)
    if settings.traces_exporter == "none":
        return

    # Imported only when used: the SDK and exporters are not loaded when off.
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(
        resource=Resource.create({"service.name": service}),
        sampler=ParentBased(TraceIdRatioBased(settings.traces_sample_ratio)),
    )
    if settings.traces_exporter == "console":
        # One file per service ("{service}" in the path), so processes never interleave lines.
        path = settings.traces_file.format(service=service)
        _out = open(path, "a", encoding="utf-8") if path else sys.stderr
        exporter = ConsoleSpanExporter(out=_out, formatter=lambda span: span.to_json(indent=None) + "\n")
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=200))
    else:  # otlp
        # It pulls in requests, which other set-ups need not load.
        import requests
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # requests lets REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE in the
        # environment replace a session's own CA (psf/requests#3829), which
        # would drop the internal CA of OTEL_EXPORTER_OTLP_CERTIFICATE; the
        # collector is in the namespace, so no proxy or .netrc from the
        # environment either (HTTPS_PROXY does not apply to spans; nor does
        # OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER, which a given
        # session replaces).
        session = requests.Session()
        session.trust_env = False
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(session=session)))
    trace.set_tracer_provider(provider)
    _provider = provider
    _tracer = provider.get_tracer("yztc")

    if settings.trace_db:
        # A span per database command (+0.07 ms CPU each): for debugging only.
        from opentelemetry.instrumentation.pymongo import PymongoInstrumentor

        PymongoInstrumentor().instrument()


def _setup_metrics(service: str, settings: CommonSettings) -> None:
    # Prometheus scrape endpoint (opentelemetry-exporter-prometheus).
    from opentelemetry import metrics
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource
    from prometheus_client import start_http_server

    start_http_server(settings.metrics_port, addr=settings.metrics_host)
    metrics.set_meter_provider(
        MeterProvider(
            resource=Resource.create({"service.name": service}),
            metric_readers=[PrometheusMetricReader()],
        )
    )


def shutdown_telemetry() -> None:
    """Flushes and stops the exporter (batched spans are written here)."""
    global _tracer, _provider, _out
    _tracer = None
    if _provider is not None:
        _provider.shutdown()
        _provider = None
    if _out is not None and _out is not sys.stderr:
        _out.close()
    _out = None


def tracing() -> bool:
    """True when an exporter is configured (spans may be recorded)."""
    return _tracer is not None


def tracer() -> trace.Tracer:
    """The process's tracer: the SDK's when tracing, else the API's no-op one."""
    return _tracer if _tracer is not None else _NO_OP_TRACER


# -- the client side ------------------------------------------------------


def trace_carrier() -> dict[str, str]:
    """The current span's W3C context as `{"traceparent": "00-<32 hex trace
    id>-<16 hex span id>-01"[, "tracestate": ...]}`, or `{}` when tracing is
    off or the current span is not sampled. Store it with work handed over
    later (e.g. a query document) and resume with `context_from_carrier`."""
    if _tracer is None:
        return {}
    if not trace.get_current_span().get_span_context().trace_flags.sampled:
        return {}
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier


def outgoing_metadata() -> Metadata:
    """gRPC metadata for a client call: `(("traceparent", ...),
    ("tracestate", ...)?)` when the current span is sampled, else `()`.
    Use as `await stub.Method(request, timeout=..., metadata=outgoing_metadata())`."""
    if _tracer is None:
        return ()
    return tuple(trace_carrier().items())


def outgoing_headers() -> dict[str, str] | None:
    """HTTP headers for a client request (`traceparent`, `tracestate`) when
    the current span is sampled, else None (aiohttp's "no extra headers")."""
    if _tracer is None:
        return None
    return trace_carrier() or None


@contextlib.contextmanager
def client_span(name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[trace.Span | None]:
    """A CLIENT span around a remote call, started only inside a sampled
    trace; yields the span, or None when nothing is recorded (then the call
    is not traced and `outgoing_*` inside the block return nothing)."""
    if _tracer is None or not trace.get_current_span().get_span_context().trace_flags.sampled:
        yield None
        return
    with _tracer.start_as_current_span(name, kind=trace.SpanKind.CLIENT, attributes=attributes) as span:
        yield span


# -- the server side ------------------------------------------------------


def context_from_carrier(carrier: Mapping[str, str] | None) -> Context | None:
    """The parent context in a W3C carrier (a dict stored by `trace_carrier`,
    or incoming headers), or None when it holds no `traceparent`."""
    if not carrier or TRACEPARENT not in carrier:
        return None
    return _W3C.extract(carrier)


def _incoming_carrier(context: grpc.aio.ServicerContext) -> dict[str, str] | None:
    metadata = context.invocation_metadata()
    if not metadata:
        return None
    carrier = None
    for key, value in metadata:
        if key == TRACEPARENT or key == TRACESTATE:
            if carrier is None:
                carrier = {}
            carrier[key] = value
    return carrier if carrier and TRACEPARENT in carrier else None


def our_service(context: grpc.aio.ServicerContext) -> bool:
    """Whether the caller is one of our services, whose trace context is
    continued: a client certificate naming `spiffe://yztc/service/<name>`
    (the internal CA's), or plaintext (only ever under YZTC_DEVELOPMENT, on
    loopback: yztc.tls.require_tls). A channel's certificate is not."""
    auth = context.auth_context()
    if is_plaintext(auth):
        return True
    peer = peer_certificate(auth)
    return peer is not None and peer.identity(SERVICE_PREFIX) is not None


def _parent_and_links(context: grpc.aio.ServicerContext, carrier: dict[str, str]) -> tuple[Context, list[trace.Link]]:
    """The caller's context when it is one of ours; else a new root, linked
    to the caller's span (L1)."""
    remote = _W3C.extract(carrier)
    if our_service(context):
        return remote, []
    caller = trace.get_current_span(remote).get_span_context()
    return Context(), ([trace.Link(caller)] if caller.is_valid else [])


@contextlib.contextmanager
def server_span(context: grpc.aio.ServicerContext, name: str) -> Iterator[trace.Span | None]:
    """A SERVER span named `name` ("yztc.v1.CompanyConnector/CountAccounts")
    around a gRPC method, started only when tracing is on and the call's
    metadata holds a `traceparent` (the caller's span was sampled): then it
    continues the caller's trace if the caller is one of our services
    (`our_service`), else starts a new one linked to it. Yields the span, or
    None."""
    carrier = _incoming_carrier(context) if _tracer is not None else None
    if carrier is None:
        yield None
        return
    service, _, method = name.rpartition("/")
    parent, links = _parent_and_links(context, carrier)
    with _tracer.start_as_current_span(
        name,
        context=parent,
        links=links,
        kind=trace.SpanKind.SERVER,
        attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": method},
    ) as span:
        try:
            yield span
        except BaseException:
            # context.abort() set the status code before raising.
            code = context.code()
            if isinstance(code, grpc.StatusCode):
                span.set_attribute("rpc.grpc.status_code", code.value[0])
            raise


def rpc_span(service: str) -> Callable[[Handler], Handler]:
    """Decorates a grpc.aio servicer method `async def Method(self, request,
    context)` with `server_span(context, f"{service}/Method")`. `service` is
    the full proto name, e.g.
    `company_connector_pb2.DESCRIPTOR.services_by_name["CompanyConnector"].full_name`."""

    def decorate(method: Handler) -> Handler:
        name = f"{service}/{method.__name__}"

        @functools.wraps(method)
        async def wrapper(self, request, context: grpc.aio.ServicerContext):
            if _tracer is None:
                return await method(self, request, context)
            with server_span(context, name):
                return await method(self, request, context)

        return wrapper  # type: ignore[return-value]

    return decorate
