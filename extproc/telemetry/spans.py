"""The processor's spans: one per request, continuing Envoy's trace, with children for the
steps worth timing; GenAI attributes at the end; prompt and completion only when asked, and
redacted."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.trace import SpanKind

from extproc.config.model import TracingSettings
from extproc.headers import TRACEPARENT, TRACESTATE
from extproc.telemetry.record import AttemptRecord, RequestRecord, decisions_of, present
from extproc.telemetry.tracer import GatewaySpan, Tracer, carrier_of, parent_from
from extproc.usage import Usage

CONTENT_LIMIT = 16 * 1024
"""Characters of prompt or completion recorded on a span, at most."""

_TRACE_FIELDS = (TRACEPARENT, TRACESTATE)


class Spans:
    def __init__(self, tracer: Tracer | None, spec: TracingSettings) -> None:
        self._tracer = tracer
        self.records_content = spec.record_content
        self._redactions = [re.compile(pattern) for pattern in spec.redact]

    def begin(
        self, record: RequestRecord, metadata: Iterable[tuple[str, Any]], headers: Mapping[str, Any]
    ) -> GatewaySpan | None:
        """The request's span, child of Envoy's span for the ext_proc call (its context
        travels in the gRPC metadata), else of the HTTP request's own `traceparent`."""
        if self._tracer is None:
            return None
        carrier = {
            name: value
            for name, value in metadata
            if name in _TRACE_FIELDS and isinstance(value, str)
        }
        if TRACEPARENT not in carrier:
            carrier = {name: values[0] for name in _TRACE_FIELDS if (values := headers.get(name))}
        return self._tracer.start(
            "gateway.request",
            parent_from(carrier),
            kind=SpanKind.CLIENT,
            start_time=record.started_ns,
        )

    @staticmethod
    def context_of(span: GatewaySpan | None) -> dict[str, str]:
        """The span's context as W3C trace-context fields, for another stream to continue."""
        return {} if span is None else carrier_of(span.context)

    def begin_attempt(self, record: AttemptRecord, parent: Mapping[str, str]) -> GatewaySpan | None:
        """An attempt's span, child of its request's span (`parent`: that span's
        `context_of`, passed along by Envoy)."""
        context = parent_from(parent)
        if self._tracer is None or context is None:
            return None
        return self._tracer.start(
            "gateway.attempt", context, kind=SpanKind.CLIENT, start_time=record.started_ns
        )

    @staticmethod
    def end_attempt(span: GatewaySpan, record: AttemptRecord) -> None:
        outcome = record.outcome
        span.set_attributes(
            present(
                {
                    "gen_ai.provider.name": record.provider_name,
                    "gen_ai.request.model": record.model,
                    "extproc.model.alias": record.alias,
                    "extproc.target": record.target,
                    "extproc.attempt.number": record.number,
                    "extproc.attempt.outcome": outcome,
                    "http.response.status_code": record.status,
                    "error.type": None if outcome == "ok" else outcome,
                }
            )
        )
        if outcome != "ok":
            span.fail(outcome)
        span.end()

    def child(self, parent: GatewaySpan | None, name: str) -> GatewaySpan | None:
        if self._tracer is None or parent is None:
            return None
        return self._tracer.start(name, parent.context)

    def content(self, text: str) -> str | None:
        """Text as it may be recorded on a span, or None when content is not recorded."""
        if not self.records_content:
            return None
        for pattern in self._redactions:
            text = pattern.sub("[REDACTED]", text)
        return text[:CONTENT_LIMIT]

    @staticmethod
    def end(span: GatewaySpan, record: RequestRecord) -> None:
        if record.mcp_server is not None:
            span.name = (
                f"{record.mcp_method or record.method} {record.mcp_tool or record.mcp_server}"
            )
        elif record.operation is not None:
            span.name = f"{record.operation} {record.upstream_model or record.alias}"
        span.set_attributes(
            present(
                {
                    "gen_ai.operation.name": record.operation,
                    "gen_ai.provider.name": record.provider_name,
                    "gen_ai.request.model": record.upstream_model,
                    "gen_ai.response.model": record.response_model,
                    **_usage_attributes(record.usage),
                    "gen_ai.input.messages": record.input_content,
                    "gen_ai.output.messages": record.output_content,
                    "http.request.method": record.method,
                    "url.path": record.path,
                    "http.response.status_code": record.status,
                    "error.type": record.error_type,
                    "extproc.request.id": record.request_id,
                    "extproc.key.id": record.key_id,
                    "extproc.principal.kind": record.principal_kind,
                    "extproc.principal.subject": record.subject,
                    "extproc.team": record.team,
                    "extproc.model.alias": record.alias,
                    "extproc.target": f"{record.provider}/{record.upstream_model}"
                    if record.provider
                    else None,
                    "extproc.stream": record.stream if record.operation else None,
                    "extproc.quota.decision": record.quota,
                    "extproc.cost.usd": record.cost_usd,
                    "gen_ai.server.time_to_first_token": record.first_token,
                    "extproc.guardrail.decisions": decisions_of(record) or None,
                    "extproc.mcp.server": record.mcp_server,
                    "mcp.method.name": record.mcp_method,
                    "gen_ai.tool.name": record.mcp_tool,
                    "extproc.mcp.outcome": record.mcp_outcome,
                }
            )
        )
        if record.error_type is not None:
            span.fail(record.error_type)
        span.end()


def _usage_attributes(usage: Usage | None) -> dict[str, int | None]:
    if usage is None:
        return {}
    return {
        "gen_ai.usage.input_tokens": usage.input_tokens,
        "gen_ai.usage.output_tokens": usage.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": usage.cached_input_tokens,
        "gen_ai.usage.cache_creation.input_tokens": usage.cache_write_tokens,
        "gen_ai.usage.reasoning.output_tokens": usage.reasoning_tokens,
    }
