"""The gateway's metrics: GenAI histograms per call, counters of requests, money and
refusals, and the observed counts of quota-store errors (and of what waits for the store)
and configuration reloads."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from extproc.telemetry.record import AttemptRecord, RequestRecord, present


class SpendState(Protocol):
    """How the spend ledger keeps up (see `extproc.spend.shipper`)."""

    @property
    def backlog(self) -> int: ...
    @property
    def dropped(self) -> int: ...
    @property
    def store_errors(self) -> int: ...


Counts = Callable[[], Mapping[str, int]]
Count = Callable[[], int]


class Metrics:
    def __init__(
        self,
        meter: Meter,
        *,
        store_errors: Counts,
        reloads: Counts,
        store_pending: Count,
        spend: SpendState | None = None,
    ) -> None:
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Tokens used per request"
        )
        self._duration = meter.create_histogram(
            "gen_ai.server.request.duration", unit="s", description="Request duration"
        )
        self._first_token = meter.create_histogram(
            "gen_ai.server.time_to_first_token", unit="s", description="Time to first token"
        )
        self._per_token = meter.create_histogram(
            "gen_ai.server.time_per_output_token", unit="s", description="Time per output token"
        )
        self._requests = meter.create_counter(
            "extproc.requests", unit="{request}", description="Requests by status and error type"
        )
        self._cost = meter.create_counter(
            "extproc.cost.usd", unit="{USD}", description="Money spent, priced with `prices`"
        )
        self._fallbacks = meter.create_counter(
            "extproc.fallbacks",
            unit="{request}",
            description="Requests answered after more than one attempt (aliases with fallback)",
        )
        self._attempts = meter.create_counter(
            "extproc.attempts",
            unit="{attempt}",
            description="Attempts at the targets of aliases with fallback, by outcome",
        )
        self._cooldowns = meter.create_counter(
            "extproc.cooldowns",
            unit="{cooldown}",
            description="Targets put in cooldown by a provider's throttling answer",
        )
        self._refusals = meter.create_counter(
            "extproc.quota.refusals", unit="{request}", description="Requests refused by quota"
        )
        self._mcp_calls = meter.create_counter(
            "extproc.mcp.calls",
            unit="{call}",
            description="Requests to MCP servers by server, method, tool and outcome",
        )
        self._guardrails = meter.create_counter(
            "extproc.guardrail.decisions",
            unit="{decision}",
            description="Guardrail decisions by policy, detector, action and direction",
        )
        self._expiring = meter.create_counter(
            "extproc.key.expiring_uses",
            unit="{request}",
            description="Requests made with a key that expires within key_expiry_notice",
        )
        meter.create_observable_counter(
            "extproc.quota.store_errors",
            callbacks=[_observe(store_errors, "extproc.quota.policy")],
            unit="{error}",
            description="Quota store operations that failed, by the failure policy applied",
        )
        meter.create_observable_gauge(
            "extproc.quota.store_pending",
            callbacks=[lambda _: [Observation(store_pending())]],
            unit="{operation}",
            description="Settlements and cancellations kept until the quota store answers again",
        )
        meter.create_observable_counter(
            "extproc.config.reloads",
            callbacks=[_observe(reloads, "extproc.reload.result")],
            unit="{reload}",
            description="Configuration reloads by result",
        )

        if spend is not None:
            _observe_spend(meter, spend)

    def record(self, record: RequestRecord) -> None:
        if record.mcp_server is not None:
            self._count_mcp_call(record)
        elif record.operation is not None:
            self._record_call(record)
        self._count_request(record)

    def _count_mcp_call(self, record: RequestRecord) -> None:
        self._mcp_calls.add(
            1,
            present(
                {
                    "extproc.mcp.server": record.mcp_server,
                    "mcp.method.name": record.mcp_method,
                    "gen_ai.tool.name": record.mcp_tool,
                    "extproc.mcp.outcome": record.mcp_outcome,
                    "extproc.key.id": record.key_id,
                }
            ),
        )

    def _record_call(self, record: RequestRecord) -> None:
        attributes = present(
            {
                "gen_ai.operation.name": record.operation,
                "gen_ai.provider.name": record.provider_name,
                "gen_ai.request.model": record.upstream_model,
                "extproc.model.alias": record.alias,
                "error.type": record.error_type,
            }
        )
        self._duration.record(record.elapsed(), attributes)
        if record.first_token is not None:
            self._first_token.record(record.first_token, attributes)
        if record.per_output_token is not None:
            self._per_token.record(record.per_output_token, attributes)
        owner = present(
            {
                "extproc.key.id": record.key_id,
                "extproc.principal.kind": record.principal_kind,
                "extproc.team": record.team,
            }
        )
        if record.usage is not None:
            for kind, tokens in (
                ("input", record.usage.input_tokens),
                ("output", record.usage.output_tokens),
            ):
                self._tokens.record(tokens, attributes | owner | {"gen_ai.token.type": kind})
        if record.attempts is not None and record.attempts > 1:
            self._fallbacks.add(1, attributes)
        if record.cost_usd:
            self._cost.add(record.cost_usd, owner | {"extproc.model.alias": record.alias or ""})

    def record_attempt(self, record: AttemptRecord) -> None:
        self._attempts.add(
            1,
            {
                "gen_ai.provider.name": record.provider_name,
                "gen_ai.request.model": record.model,
                "extproc.model.alias": record.alias,
                "extproc.attempt.outcome": record.outcome,
            },
        )

    def count_cooldown(self, target: str) -> None:
        self._cooldowns.add(1, {"extproc.target": target})

    def _count_request(self, record: RequestRecord) -> None:
        self._requests.add(
            1,
            present(
                {
                    "http.response.status_code": record.status,
                    "error.type": record.error_type,
                    "extproc.model.alias": record.alias,
                    "extproc.principal.kind": record.principal_kind,
                }
            ),
        )
        if record.key_expiring:
            self._expiring.add(1, {"extproc.key.id": record.key_id or ""})
        for decision in record.guardrails:
            self._guardrails.add(
                1,
                {
                    "extproc.guardrail.policy": decision.policy,
                    "extproc.guardrail.detector": decision.detector,
                    "extproc.guardrail.action": decision.action,
                    "extproc.guardrail.direction": decision.direction,
                },
            )
        if record.refused_scope is not None:
            self._refusals.add(
                1,
                present(
                    {
                        "extproc.quota.scope": record.refused_scope,
                        "extproc.quota.metric": record.refused_metric,
                        "extproc.key.id": record.key_id,
                    }
                ),
            )


def _observe_spend(meter: Meter, spend: SpendState) -> None:
    """How the spend ledger keeps up: what waits for its store, what it dropped."""
    meter.create_observable_gauge(
        "extproc.spend.backlog",
        callbacks=[lambda _: [Observation(spend.backlog)]],
        unit="By",
        description="Journaled spend rows not yet in the ledger's store",
    )
    meter.create_observable_counter(
        "extproc.spend.dropped",
        callbacks=[lambda _: [Observation(spend.dropped)]],
        unit="{row}",
        description="Spend rows dropped: the journal backlog was full",
    )
    meter.create_observable_counter(
        "extproc.spend.store_errors",
        callbacks=[lambda _: [Observation(spend.store_errors)]],
        unit="{error}",
        description="Shipments the ledger's store failed (each retried)",
    )


def _observe(counts: Counts, label: str) -> Callable[[CallbackOptions], Sequence[Observation]]:
    def callback(_: CallbackOptions) -> Sequence[Observation]:
        return [Observation(count, {label: name}) for name, count in counts().items()]

    return callback
