"""The processor's OTLP span encoding against the OpenTelemetry SDK's as the oracle: the same
spans give the same ExportTraceServiceRequest, whatever their attributes, status, parent and
kind, across resources and scopes."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.span import TraceFlags, TraceState

from extproc.telemetry.otlp_wire import SpanEncoder

ATTRIBUTES = {
    "gen_ai.operation.name": "chat",
    "gen_ai.usage.input_tokens": 1234,
    "gen_ai.usage.output_tokens": 0,
    "extproc.cost.usd": 0.000125,
    "extproc.stream": True,
    "extproc.cached": False,
    "negative": -42,
    "huge": 2**62,
    "unicode": "naïve — ✓",
    "empty": "",
    "long": "x" * 1000,
    "list": ["a", "b"],
    "numbers": [1, 2, 3],
}


class Kept(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def ended_spans() -> list[ReadableSpan]:
    kept = Kept()
    spans: list[ReadableSpan] = []
    for service in ("gateway", "other", "gateway"):  # the last equal to the first, not it
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(SimpleSpanProcessor(kept))
        remote = SpanContext(
            0x0AF7651916CD43DD8448EB211C80319C,
            0xB7AD6B7169203331,
            is_remote=True,
            trace_flags=TraceFlags(1),
            trace_state=TraceState([("vendor", "value")]),
        )
        for version in (None, "1.2.3"):
            tracer = provider.get_tracer("extproc", version)
            for kind in SpanKind:
                parent = trace.set_span_in_context(NonRecordingSpan(remote))
                span = tracer.start_span("chat gpt-4o", context=parent, kind=kind)
                span.set_attributes(ATTRIBUTES)
                child = tracer.start_span("gateway.quota.reserve", trace.set_span_in_context(span))
                child.set_status(Status(StatusCode.OK))
                child.end()
                span.set_status(Status(StatusCode.ERROR, "upstream_timeout"))
                span.end()
            tracer.start_span("root").end()
        spans.extend(kept.spans)
        kept.spans.clear()
    return spans


@pytest.mark.parametrize("count", [1, 7, 200])
def test_the_same_request_as_the_sdks_encoder(count: int) -> None:
    spans = ended_spans()
    batch = (spans * (count // len(spans) + 1))[:count]
    ours = ExportTraceServiceRequest.FromString(SpanEncoder().encode(batch))
    assert ours == encode_spans(batch)


def test_an_empty_batch_is_an_empty_request() -> None:
    assert SpanEncoder().encode([]) == b""
    assert encode_spans([]).SerializeToString() == b""
