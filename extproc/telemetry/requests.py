"""What each request reports when it ends: its span, its metrics, its access-log line.

Names follow the OpenTelemetry GenAI semantic conventions; gateway-specific attributes use
the `extproc.` prefix. Keys appear only by id, never by value.
"""

from __future__ import annotations

from extproc.telemetry.access_log import AccessLog, access_line
from extproc.telemetry.metrics import Metrics
from extproc.telemetry.record import AttemptRecord, RequestRecord
from extproc.telemetry.spans import Spans
from extproc.telemetry.tracer import GatewaySpan


class Telemetry:
    """Per-process reporting; `spans.begin` and `finish` bracket each request,
    `spans.begin_attempt` and `finish_attempt` each attempt of a call with fallback."""

    def __init__(self, spans: Spans, metrics: Metrics | None, access_log: AccessLog | None) -> None:
        """`metrics`: None when no reader collects them (measuring would be wasted work:
        5 % of a plain call's CPU)."""
        self.spans = spans
        self._metrics = metrics
        self._access_log = access_log

    def finish(self, record: RequestRecord, span: GatewaySpan | None) -> None:
        if span is not None:
            self.spans.end(span, record)
        if self._metrics is not None:
            self._metrics.record(record)
        if self._access_log is not None:
            self._access_log.write(access_line(record))

    def finish_attempt(self, record: AttemptRecord, span: GatewaySpan | None) -> None:
        if span is not None:
            self.spans.end_attempt(span, record)
        if self._metrics is not None:
            self._metrics.record_attempt(record)

    def note_cooldown(self, target: str) -> None:
        if self._metrics is not None:
            self._metrics.count_cooldown(target)

    def flush(self) -> None:
        if self._access_log is not None:
            self._access_log.flush()
