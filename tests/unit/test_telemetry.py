"""Telemetry: off installs nothing; on, the W3C context travels only with
sampled work, and a server continues the caller's trace."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.util._once import Once
from pydantic import ValidationError

from yztc import telemetry
from yztc.settings import CommonSettings

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def settings(**values) -> CommonSettings:
    """CommonSettings from field names (its fields are read by their YZTC_ names)."""
    return CommonSettings.model_validate({f"YZTC_{name.upper()}": value for name, value in values.items()})


@pytest.fixture
def traces(tmp_path: Path) -> Iterator[Path]:
    """Where spans go; after the test, the process is back to no provider
    (the API allows one provider per process, so its private once-guard is
    reset as OpenTelemetry's own test utilities do)."""
    path = tmp_path / "spans.jsonl"
    yield path
    telemetry.shutdown_telemetry()
    trace._TRACER_PROVIDER = None
    trace._TRACER_PROVIDER_SET_ONCE = Once()


def spans(path: Path) -> list[dict]:
    telemetry.shutdown_telemetry()  # flushes the batch processor
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


class FakeServicerContext:
    """The one thing the server helpers read from a grpc.aio.ServicerContext."""

    def __init__(self, metadata: tuple[tuple[str, str], ...], auth: dict[str, list[bytes]] | None = None) -> None:
        self._metadata = metadata
        self._auth = auth or {}  # {}: a plaintext call (development)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._auth

    def code(self) -> None:
        return None


def test_the_defaults_are_off_and_one_percent(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("YZTC_TRACES_EXPORTER", "YZTC_TRACES_SAMPLE_RATIO", "YZTC_TRACE_DB"):
        monkeypatch.delenv(name, raising=False)
    common = CommonSettings()
    assert (common.traces_exporter, common.traces_sample_ratio, common.trace_db) == ("none", 0.01, False)
    monkeypatch.setenv("YZTC_TRACES_SAMPLE_RATIO", "0.25")
    monkeypatch.setenv("YZTC_TRACE_DB", "1")
    assert (CommonSettings().traces_sample_ratio, CommonSettings().trace_db) == (0.25, True)


@pytest.mark.parametrize("ratio", ["-0.1", "1.5", "often"])
def test_a_ratio_outside_0_to_1_stops_start_up(monkeypatch: pytest.MonkeyPatch, ratio: str) -> None:
    monkeypatch.setenv("YZTC_TRACES_SAMPLE_RATIO", ratio)
    with pytest.raises(ValidationError):
        CommonSettings()


def test_off_installs_no_provider_and_no_instrumentor() -> None:
    # A fresh interpreter: this one has imported whatever other tests needed.
    script = textwrap.dedent(
        """
        import sys
        import grpc.aio
        from opentelemetry import trace
        from yztc import telemetry
        from yztc.settings import CommonSettings

        server = grpc.aio.server
        telemetry.setup_telemetry("svc", CommonSettings.model_validate({"YZTC_TRACES_EXPORTER": "none"}))
        loaded = sorted(m for m in sys.modules if m.startswith(("opentelemetry.sdk", "opentelemetry.instrumentation")))
        assert not loaded, loaded
        assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"
        assert grpc.aio.server is server
        assert not telemetry.tracing()
        with telemetry.tracer().start_as_current_span("work"):
            assert telemetry.outgoing_metadata() == ()
            assert telemetry.outgoing_headers() is None
            assert telemetry.trace_carrier() == {}
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr


async def test_off_a_server_ignores_an_incoming_traceparent() -> None:
    context = FakeServicerContext((("traceparent", TRACEPARENT),))
    with telemetry.server_span(context, "yztc.v1.X/Y") as span:
        assert span is None


def test_sampled_a_call_carries_its_context(traces: Path) -> None:
    telemetry.setup_telemetry(
        "svc", settings(traces_exporter="console", traces_file=str(traces), traces_sample_ratio=1.0)
    )
    with telemetry.tracer().start_as_current_span("request") as span:
        metadata = dict(telemetry.outgoing_metadata())
        ctx = span.get_span_context()
    version, trace_id, span_id, flags = metadata["traceparent"].split("-")
    assert (version, trace_id, span_id) == ("00", f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")
    assert int(flags, 16) & 0x01  # sampled (0x02, "random trace id", may be set too)
    assert telemetry.outgoing_headers() is None  # outside any span


def test_unsampled_nothing_is_carried(traces: Path) -> None:
    telemetry.setup_telemetry(
        "svc", settings(traces_exporter="console", traces_file=str(traces), traces_sample_ratio=0.0)
    )
    with telemetry.tracer().start_as_current_span("request"):
        assert telemetry.outgoing_metadata() == ()
        assert telemetry.outgoing_headers() is None
        with telemetry.client_span("GET") as span:
            assert span is None
    assert spans(traces) == []


async def test_the_server_span_continues_the_callers_trace(traces: Path) -> None:
    # Ratio 0: the server follows its sampled parent, whatever its own ratio.
    telemetry.setup_telemetry(
        "svc", settings(traces_exporter="console", traces_file=str(traces), traces_sample_ratio=0.0)
    )

    class Servicer:
        @telemetry.rpc_span("yztc.v1.CompanyConnector")
        async def CountAccounts(self, request, context):
            return dict(telemetry.outgoing_metadata())

    answer = await Servicer().CountAccounts(None, FakeServicerContext((("traceparent", TRACEPARENT),)))
    assert answer["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")
    untraced = await Servicer().CountAccounts(None, FakeServicerContext((("other", "x"),)))
    assert untraced == {}
    (span,) = spans(traces)
    assert span["name"] == "yztc.v1.CompanyConnector/CountAccounts"
    assert span["kind"] == "SpanKind.SERVER"
    assert span["context"]["trace_id"] == "0x0af7651916cd43dd8448eb211c80319c"
    assert span["parent_id"] == "0xb7ad6b7169203331"
    assert span["attributes"]["rpc.method"] == "CountAccounts"


def test_a_stored_carrier_resumes_the_trace(traces: Path) -> None:
    telemetry.setup_telemetry(
        "svc", settings(traces_exporter="console", traces_file=str(traces), traces_sample_ratio=1.0)
    )
    with telemetry.tracer().start_as_current_span("intake") as span:
        carrier = telemetry.trace_carrier()
        trace_id = span.get_span_context().trace_id
    assert telemetry.context_from_carrier({}) is None
    with telemetry.tracer().start_as_current_span("round", context=telemetry.context_from_carrier(carrier)) as later:
        assert later.get_span_context().trace_id == trace_id


def test_db_spans_are_opt_in(traces: Path) -> None:
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor

    telemetry.setup_telemetry("svc", settings(traces_exporter="console", traces_file=str(traces)))
    assert not PymongoInstrumentor().is_instrumented_by_opentelemetry
    telemetry.shutdown_telemetry()
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    telemetry.setup_telemetry("svc", settings(traces_exporter="console", traces_file=str(traces), trace_db=True))
    try:
        assert PymongoInstrumentor().is_instrumented_by_opentelemetry
    finally:
        PymongoInstrumentor().uninstrument()
