"""Quota refusals as the client gets them: status, error code, `Retry-After` and the
rate-limit headers (the quota package itself knows nothing of HTTP)."""

from __future__ import annotations

from extproc import headers as names
from extproc.errors import GatewayError, QuotaExhausted, RateLimited, ServiceUnavailable
from extproc.pipeline.ratelimit_headers import ratelimit_headers
from extproc.quota.limits import Limit
from extproc.quota.standing import QuotaRefused

STORE_DOWN_RETRY_AFTER = 1


def refused(refusal: QuotaRefused) -> GatewayError:
    """The answer to a request a limit refused before it was sent."""
    limit, retry_after = refusal.limit, refusal.retry_after
    headers = [(names.RETRY_AFTER, str(retry_after)), *ratelimit_headers(refusal.standings)]
    error: GatewayError
    if refusal.budget:
        error = QuotaExhausted(f"Budget exhausted: {limit.describe()}.", headers=headers)
    else:
        message = f"Limit reached: {limit.describe()}. Retry after {retry_after} s."
        error = RateLimited(message, headers=headers)
    error.labels = refusal_labels(limit)
    return error


def stopped_mid_stream(limit: Limit | None) -> GatewayError:
    """The error event ending a stream whose answer outgrew what its limits allow."""
    described = limit.describe() if limit is not None else "a budget"
    message = f"Limit reached during the stream: {described}. The answer ends here."
    error: GatewayError = RateLimited(message)
    if limit is not None and limit.metric == "usd":
        error = QuotaExhausted(message)
    if limit is not None:
        error.labels = refusal_labels(limit)
    return error


def store_down() -> ServiceUnavailable:
    """The answer when the quota store is down and the policy is to refuse."""
    return ServiceUnavailable(
        "The quota service is unavailable, so the request was not sent. Retry shortly.",
        code="quota_store_unavailable",
        headers=[(names.RETRY_AFTER, str(STORE_DOWN_RETRY_AFTER))],
    )


def refusal_labels(limit: Limit) -> dict[str, str]:
    """Which kind of limit refused, for metrics (never sent to clients)."""
    return {"scope": limit.scope.partition(":")[0], "metric": limit.metric}
