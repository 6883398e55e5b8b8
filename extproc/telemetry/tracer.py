"""The processor's own spans, made without the OpenTelemetry SDK's tracer and handed to the
SDK's batch span processor and exporter.

The SDK's tracer makes each span through a sampler, an id generator, a context, bounded and
locked attributes and the span processors' hooks: about 40 µs a span on the event loop. The
gateway's spans need none of that generality: they continue a W3C trace context, follow the
parent's sampling decision (else a ratio of trace ids, as the SDK's ParentBased(TraceIdRatio)
sampler does), and carry a few dozen attributes of known types. What they share with the SDK
is the wire: each ended span is an `ExportableSpan` (what `otlp_wire` encodes), exported in
batches by the SDK's BatchSpanProcessor.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from extproc.headers import TRACEPARENT, TRACESTATE

_UNSET = Status(StatusCode.UNSET)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_RATIO_BITS = 0xFFFF_FFFF_FFFF_FFFF
"""The trace id's low 64 bits decide a ratio sampling, as in the SDK's TraceIdRatioBased."""


class SpanSink(Protocol):
    """Where ended spans go: the SDK's span processors take them by `on_end`."""

    def on_end(self, span: Any) -> None: ...


@dataclass(frozen=True, slots=True)
class Tracer:
    sink: SpanSink
    resource: Resource
    scope: InstrumentationScope
    sampling: float
    """Share of new traces (no sampled or unsampled parent) recorded."""

    def samples(self, trace_id: int) -> bool:
        """Whether a new trace is recorded: the SDK's TraceIdRatioBased decision."""
        return (trace_id & _RATIO_BITS) < round(self.sampling * (_RATIO_BITS + 1))

    def start(
        self,
        name: str,
        parent: SpanContext | None,
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        start_time: int | None = None,
    ) -> GatewaySpan | None:
        """A recording span under `parent`, or None when the trace is not sampled."""
        if parent is not None:
            if not parent.trace_flags.sampled:
                return None
            trace_id, state = parent.trace_id, parent.trace_state
        else:
            trace_id, state = random.getrandbits(128) or 1, None
            if not self.samples(trace_id):
                return None
        context = SpanContext(trace_id, _span_id(), False, _SAMPLED, state)
        return GatewaySpan(
            self, context, parent, name, kind=kind, start_time=start_time or time.time_ns()
        )


class GatewaySpan:
    """One span being recorded; `end` hands it to the tracer's sink. It reads as the SDK's
    ReadableSpan reads to the exporter (context, parent, times, attributes, status)."""

    __slots__ = (
        "_tracer",
        "attributes",
        "context",
        "end_time",
        "kind",
        "name",
        "parent",
        "start_time",
        "status",
    )
    dropped_attributes = 0

    def __init__(
        self,
        tracer: Tracer,
        context: SpanContext,
        parent: SpanContext | None,
        name: str,
        *,
        kind: SpanKind,
        start_time: int,
    ) -> None:
        self._tracer = tracer
        self.context, self.parent, self.name, self.kind = context, parent, name, kind
        self.start_time, self.end_time = start_time, 0
        self.attributes: dict[str, Any] = {}
        self.status = _UNSET

    @property
    def resource(self) -> Resource:
        return self._tracer.resource

    @property
    def instrumentation_scope(self) -> InstrumentationScope:
        return self._tracer.scope

    def get_span_context(self) -> SpanContext:
        return self.context

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        """Values must be what OTLP carries (str, bool, int, float, or sequences of those)."""
        self.attributes.update(attributes)

    def fail(self, description: str) -> None:
        self.status = Status(StatusCode.ERROR, description)

    def end(self) -> None:
        if not self.end_time:
            self.end_time = time.time_ns()
            self._tracer.sink.on_end(self)


def _span_id() -> int:
    return random.getrandbits(64) or 1


def parent_from(carrier: Mapping[str, str]) -> SpanContext | None:
    """The remote span a W3C `traceparent` names (None when absent or malformed, as the
    SDK's propagator reads it), with its `tracestate`."""
    header = carrier.get(TRACEPARENT)
    if header is None:
        return None
    fields = _TRACEPARENT_FORMAT.fullmatch(header.strip())
    if fields is None:
        return None
    version, trace, span, flags, more = fields.groups()
    if version == "ff" or (version == "00" and more is not None):
        return None
    trace_id, span_id = int(trace, 16), int(span, 16)
    if not trace_id or not span_id:
        return None
    state = carrier.get(TRACESTATE)
    return SpanContext(
        trace_id,
        span_id,
        True,
        TraceFlags(int(flags, 16)),
        TraceState.from_header([state]) if state else None,
    )


_TRACEPARENT_FORMAT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
"""version-trace-span-flags, in lowercase hex; a version after 00 may add fields."""


def carrier_of(context: SpanContext) -> dict[str, str]:
    """The W3C trace-context fields that continue `context` elsewhere."""
    carrier = {TRACEPARENT: f"00-{context.trace_id:032x}-{context.span_id:016x}-01"}
    if context.trace_state:
        carrier[TRACESTATE] = context.trace_state.to_header()
    return carrier
