"""The processor's own spans against the OpenTelemetry SDK as the oracle: the same trace
context read from the same headers, the same sampling decisions, and the same bytes on the
wire as the SDK's encoder gives for spans of the same content."""

from __future__ import annotations

import random
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.sampling import Decision, TraceIdRatioBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind, get_current_span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from extproc.telemetry.otlp_wire import SpanEncoder
from extproc.telemetry.tracer import GatewaySpan, Tracer, carrier_of, parent_from

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"
HEADERS = [
    f"00-{TRACE}-{SPAN}-01",
    f"00-{TRACE}-{SPAN}-00",
    f"00-{TRACE}-{SPAN}-03",
    f" 00-{TRACE}-{SPAN}-01 ",
    f"01-{TRACE}-{SPAN}-01-future-fields",
    f"00-{TRACE}-{SPAN}-01-extra",
    f"ff-{TRACE}-{SPAN}-01",
    f"00-{'0' * 32}-{SPAN}-01",
    f"00-{TRACE}-{'0' * 16}-01",
    f"00-{TRACE.upper()}-{SPAN}-01",
    f"00-{TRACE[:-1]}-{SPAN}-01",
    f"00-{TRACE}-{SPAN}-1",
    f"0x-{TRACE}-{SPAN}-01",
    f"00-{TRACE}-{SPAN}",
    "garbage",
    "",
]


class Kept:
    def __init__(self) -> None:
        self.spans: list[GatewaySpan] = []

    def on_end(self, span: Any) -> None:
        self.spans.append(span)


def tracer(sampling: float = 1.0) -> tuple[Tracer, Kept]:
    kept = Kept()
    resource = Resource.create({"service.name": "extproc-gateway"})
    return Tracer(kept, resource, InstrumentationScope("extproc"), sampling), kept


@pytest.mark.parametrize("header", HEADERS)
@pytest.mark.parametrize("state", [None, "vendor=value,other=1"])
def test_reads_trace_context_as_the_sdk_does(header: str, state: str | None) -> None:
    carrier = {"traceparent": header} | ({"tracestate": state} if state else {})
    expected = get_current_span(TraceContextTextMapPropagator().extract(carrier)).get_span_context()
    ours = parent_from(carrier)
    if not expected.is_valid:
        assert ours is None
    else:
        assert ours == expected
        assert ours is not None and ours.trace_state == expected.trace_state


def test_a_span_carries_on_as_the_sdk_reads_it() -> None:
    made, _ = tracer()
    parent = parent_from({"traceparent": f"00-{TRACE}-{SPAN}-01", "tracestate": "vendor=value"})
    span = made.start("gateway.request", parent)
    assert span is not None
    carried = TraceContextTextMapPropagator().extract(carrier_of(span.context))
    context = get_current_span(carried).get_span_context()
    assert (context.trace_id, context.span_id) == (int(TRACE, 16), span.context.span_id)
    assert context.trace_flags.sampled and context.trace_state == parent.trace_state


@pytest.mark.parametrize("sampling", [0.0, 0.1, 0.5, 1.0])
def test_new_traces_are_sampled_as_the_sdk_samples_them(sampling: float) -> None:
    made, _ = tracer(sampling)
    oracle = TraceIdRatioBased(sampling)
    draw = random.Random(7)
    for _ in range(5000):
        trace_id = draw.getrandbits(128)
        expected = oracle.should_sample(None, trace_id, "x").decision
        assert made.samples(trace_id) == (expected is Decision.RECORD_AND_SAMPLE)


def test_the_parents_decision_is_followed() -> None:
    made, _ = tracer(sampling=0.0)
    assert made.start("x", parent_from({"traceparent": f"00-{TRACE}-{SPAN}-01"})) is not None
    assert made.start("x", parent_from({"traceparent": f"00-{TRACE}-{SPAN}-00"})) is None
    assert made.start("x", None) is None
    assert tracer(sampling=1.0)[0].start("x", None) is not None


def test_ended_spans_go_out_as_the_sdks_encoder_writes_them() -> None:
    made, kept = tracer()
    parent = parent_from({"traceparent": f"00-{TRACE}-{SPAN}-01", "tracestate": "v=1"})
    request = made.start("gateway.request", parent, kind=SpanKind.CLIENT, start_time=10**18)
    assert request is not None
    child = made.start("gateway.quota.reserve", request.context)
    assert child is not None
    child.end()
    request.name = "chat gpt-4o"
    request.set_attributes({"gen_ai.usage.input_tokens": 12, "extproc.cost.usd": 0.5})
    request.set_attributes({"extproc.stream": True, "error.type": "upstream_timeout"})
    request.fail("upstream_timeout")
    request.end()
    request.end()  # a second end changes nothing
    root = made.start("root", None)
    assert root is not None
    root.end()
    assert [span.name for span in kept.spans] == ["gateway.quota.reserve", "chat gpt-4o", "root"]
    assert child.parent == request.context and not request.context.is_remote

    readable = [
        ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=span.attributes,
            kind=span.kind,
            status=span.status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )
        for span in kept.spans
    ]
    ours = ExportTraceServiceRequest.FromString(SpanEncoder().encode(kept.spans))
    assert ours == encode_spans(readable)
