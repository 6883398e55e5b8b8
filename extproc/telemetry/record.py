"""Everything worth reporting about one request, filled in as it passes through the gateway."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from extproc.guardrails.policy import Decision
from extproc.usage import Usage


@dataclass(slots=True)
class RequestRecord:
    started: float = field(default_factory=time.monotonic)
    started_ns: int = field(default_factory=time.time_ns)
    method: str | None = None
    path: str | None = None
    request_id: str | None = None
    key_id: str | None = None
    team: str | None = None
    principal_kind: str | None = None
    """`key`, `jwt`, `spiffe`, or a key and an identity together (`key+jwt`)."""
    subject: str | None = None
    """The verified identity behind the call (`user:alice`), never a token."""
    key_expiring: bool = False
    """The key expires within `key_expiry_notice`."""
    operation: str | None = None
    """The GenAI operation (`chat`, `text_completion`, `embeddings`); None for local answers."""
    alias: str | None = None
    provider: str | None = None
    provider_name: str | None = None
    """`gen_ai.provider.name` of the provider kind (`openai`, `anthropic`, `gcp.gemini`, …)."""
    upstream_model: str | None = None
    response_model: str | None = None
    provider_request_id: str | None = None
    """The provider's own id for the call (what its support asks for)."""
    stream: bool = False
    status: int | None = None
    error_type: str | None = None
    quota: str | None = None
    """`metered`, `unmetered`, `refused`, `store_unavailable`."""
    reserved_at: float | None = None
    """When its quota was reserved (Unix time, the quota store's clock)."""
    counters: tuple[str, ...] = ()
    """The windowed quota counters it was reserved against (what reconciliation sums)."""
    refused_scope: str | None = None
    refused_metric: str | None = None
    usage: Usage | None = None
    """What the request used (the provider's figures, else the gateway's estimate)."""
    cost_usd: float | None = None
    attempts: int | None = None
    """Attempts Envoy made for a call to an alias with fallback."""
    first_token: float | None = None
    per_output_token: float | None = None
    input_content: str | None = None
    output_content: str | None = None
    guardrails: list[Decision] = field(default_factory=list)
    """What guardrail policies did to the request and its answer."""
    mcp_server: str | None = None
    mcp_method: str | None = None
    """The JSON-RPC method of a call to an MCP server (`tools/call`, …; several, joined by
    commas, for a batch)."""
    mcp_tool: str | None = None
    """The tool a `tools/call` named."""

    @property
    def mcp_outcome(self) -> str | None:
        """How a call to an MCP server ended: ok, refused (by the gateway), failed (the tool
        said so), unavailable (the server), error; None for other requests."""
        if self.mcp_server is None:
            return None
        error = self.error_type
        if error is None:
            return "ok"
        if error == "tool_failed":
            return "failed"
        if error.startswith("mcp_server_"):
            return "unavailable"
        if error in ("tool_refused", "mcp_refused") or self.refused_scope is not None:
            return "refused"
        return "error"

    def note_refusal(self, labels: Mapping[str, str], decision: str) -> None:
        """A quota said no (`refused` before upstream, `stopped` during a stream)."""
        self.quota = decision
        self.refused_scope, self.refused_metric = labels.get("scope"), labels.get("metric")

    def elapsed(self) -> float:
        return time.monotonic() - self.started


@dataclass(slots=True)
class AttemptRecord:
    """One attempt of a call to an alias with fallback: where it went and how it ended."""

    alias: str
    target: str
    """`provider/model`."""
    provider_name: str
    model: str
    number: int | None
    """Envoy's count: 1 for the first attempt."""
    started_ns: int = field(default_factory=time.time_ns)
    status: int | None = None
    """The provider's status; None when no answer came (connect failure, reset, timeout)."""

    @property
    def outcome(self) -> str:
        """`ok`, `429`, `4xx`, `5xx`, or `no_answer`: what the router's retry policy saw."""
        status = self.status
        if status is None:
            return "no_answer"
        if status < 400:
            return "ok"
        return "429" if status == 429 else f"{status // 100}xx"


def present(values: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes that have a value (OpenTelemetry takes no None)."""
    return {name: value for name, value in values.items() if value is not None}


def decisions_of(record: RequestRecord) -> list[str]:
    """The guardrail decisions, as `direction:policy/detector:action` (never matched text)."""
    return [
        f"{decision.direction}:{decision.policy}/{decision.detector}:{decision.action}"
        for decision in record.guardrails
    ]
