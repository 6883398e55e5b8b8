"""The response side of one model call: rate-limit headers, provider errors in OpenAI's shape,
event streams relayed (and cut when a budget runs out), and the quota settlement."""

from __future__ import annotations

import logging

from extproc import headers as names
from extproc.envoyapi.messages import (
    HttpHeaders,
    ProcessingResponse,
    amend_response_headers,
    pass_through,
    read_headers,
    relay_body,
    replace_response_body,
)
from extproc.errors import GatewayError, QuotaExhausted, RateLimited
from extproc.pipeline.metering import Meter
from extproc.pipeline.provider_errors import (
    PROVIDER_CREDENTIALS_REFUSED,
    client_status,
    openai_error_body,
)
from extproc.quota.ledger import Reservation

log = logging.getLogger(__name__)

STREAM_EXTENSION = 256
"""Output tokens reserved at a time when a stream outgrows its reservation."""


class ResponsePath:
    __slots__ = ("_meter", "_provider", "_reservation", "_schema", "_settled", "_stopped")

    def __init__(
        self, meter: Meter, reservation: Reservation, *, schema: str, provider: str
    ) -> None:
        self._meter = meter
        self._reservation = reservation
        self._schema = schema
        self._provider = provider
        self._stopped = False
        self._settled = False

    def on_headers(self, message: HttpHeaders) -> ProcessingResponse:
        headers = read_headers(message)
        status = int(headers[names.STATUS][0])
        content_type = (headers.get(names.CONTENT_TYPE) or [""])[0]
        streamed = self._meter.on_headers(status, content_type)
        set_headers = list(self._reservation.headers)
        if status >= 400 and self._schema == "openai":
            set_headers.append((names.CONTENT_TYPE, "application/json"))
            if status != client_status(status):
                set_headers.append((names.STATUS, str(client_status(status))))
        if status in PROVIDER_CREDENTIALS_REFUSED:
            log.error("provider %s refused the gateway's credentials (%d)", self._provider, status)
        return amend_response_headers(set_headers, stream_body=streamed)

    async def on_body(self, chunk: bytes, *, end: bool) -> ProcessingResponse | None:
        """The answer for a body chunk; None once a stream was ended early (Envoy has
        finished the response and needs nothing more)."""
        if self._stopped:
            return None
        if self._meter.relay is not None:
            return await self._relay(chunk, end=end)
        self._meter.on_json_body(chunk, end=end)
        status = self._meter.status or 0
        if end and status >= 400 and self._schema == "openai":
            reshaped = openai_error_body(status, chunk)
            if reshaped is not None:
                return replace_response_body(reshaped)
        return pass_through("response_body")

    async def finish(self) -> None:
        """Settle once: the real usage, or what the meter can vouch for."""
        if not self._settled:
            self._settled = True
            await self._reservation.settle(self._meter.usage(self._reservation.output_tokens))
            if self._meter.relay is not None and log.isEnabledFor(logging.DEBUG):
                timing = self._meter.relay.timing()
                log.debug(
                    "stream from %s: first token after %s s, %s s per output token",
                    self._provider,
                    timing.first_token,
                    timing.per_output_token,
                )

    async def refund(self) -> None:
        if not self._settled:
            self._settled = True
            await self._reservation.settle(None)

    async def _relay(self, chunk: bytes, *, end: bool) -> ProcessingResponse:
        relay = self._meter.relay
        assert relay is not None
        out: list[bytes] = []
        for piece in relay.feed(chunk, end=end):
            if not await self._covered(piece.output_tokens):
                out.append(relay.stop(self._spent_error()))
                self._stopped = True
                return relay_body(b"".join(out), end=True)
            out.append(piece.raw)
        return relay_body(b"".join(out), end=end)

    async def _covered(self, output_tokens: int) -> bool:
        """Whether the reservation covers this much output, growing it when it can."""
        reservation = self._reservation
        while output_tokens > reservation.output_tokens:
            needed = output_tokens - reservation.output_tokens
            if not await reservation.extend(max(STREAM_EXTENSION, needed)):
                return False
        return True

    def _spent_error(self) -> GatewayError:
        limit = self._reservation.spent
        described = limit.describe() if limit is not None else "a budget"
        message = f"Limit reached during the stream: {described}. The answer ends here."
        if limit is not None and limit.metric == "usd":
            return QuotaExhausted(message)
        return RateLimited(message)
