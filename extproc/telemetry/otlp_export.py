"""The SDK's OTLP/gRPC span exporter sending spans SpanEncoder wrote (kept apart from the
encoder: mypyc compiles that one, and not a class extending the SDK's)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from extproc.telemetry.otlp_wire import ExportableSpan, SpanEncoder

_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


class WireSpanExporter(OTLPSpanExporter):
    """The SDK's OTLP/gRPC span exporter (its retries, timeouts, reconnection, metrics), sending
    what SpanEncoder wrote instead of the messages the SDK's encoder builds."""

    def __init__(self, **settings: Any) -> None:
        self._encoder = SpanEncoder()
        super().__init__(**settings)

    def _initialize_channel_and_stub(self) -> None:
        super()._initialize_channel_and_stub()  # type: ignore[no-untyped-call]
        assert self._channel is not None
        self._client = _RawExport(self._channel)

    def _translate_data(self, data: Sequence[ExportableSpan]) -> bytes:  # type: ignore[override]
        return self._encoder.encode(data)


class _RawExport:
    """A TraceService stub whose requests are bytes already."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.Export = channel.unary_unary(
            _EXPORT,
            request_serializer=None,
            response_deserializer=ExportTraceServiceResponse.FromString,
        )
