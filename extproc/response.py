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
from extproc.quota.ledger import Reservation, refusal_labels
from extproc.quota.limits import MICRO_USD_PER_USD, Price
from extproc.telemetry.record import RequestRecord
from extproc.telemetry.setup import Telemetry

log = logging.getLogger(__name__)

STREAM_EXTENSION = 256
"""Output tokens reserved at a time when a stream outgrows its reservation."""


class ResponsePath:
    __slots__ = (
        "_meter",
        "_price",
        "_record",
        "_reservation",
        "_schema",
        "_settled",
        "_stopped",
        "_telemetry",
    )

    def __init__(
        self,
        meter: Meter,
        reservation: Reservation,
        *,
        schema: str,
        price: Price | None,
        record: RequestRecord,
        telemetry: Telemetry,
    ) -> None:
        self._meter = meter
        self._reservation = reservation
        self._schema = schema
        self._price = price
        self._record = record
        self._telemetry = telemetry
        self._stopped = False
        self._settled = False

    def on_headers(self, message: HttpHeaders) -> ProcessingResponse:
        headers = read_headers(message)
        status = int(headers[names.STATUS][0])
        content_type = (headers.get(names.CONTENT_TYPE) or [""])[0]
        streamed = self._meter.on_headers(status, content_type)
        self._record.status = client_status(status)
        if status >= 400:
            self._record.error_type = str(status)
        set_headers = list(self._reservation.headers)
        if status >= 400 and self._schema == "openai":
            set_headers.append((names.CONTENT_TYPE, "application/json"))
            if status != client_status(status):
                set_headers.append((names.STATUS, str(client_status(status))))
        if status in PROVIDER_CREDENTIALS_REFUSED:
            log.error(
                "provider %s refused the gateway's credentials (%d)", self._record.provider, status
            )
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
        if self._settled:
            return
        self._settled = True
        usage = self._meter.usage(self._reservation.output_tokens)
        await self._reservation.settle(usage)
        record = self._record
        if usage is not None:
            record.input_tokens, record.output_tokens = usage.input_tokens, usage.output_tokens
            if self._price is not None:
                record.cost_usd = self._price.micro_usd(usage) / MICRO_USD_PER_USD
        record.response_model = self._meter.response_model()
        if self._telemetry.records_content:
            record.output_content = self._telemetry.content(self._meter.output_text())
        if self._meter.relay is not None:
            timing = self._meter.relay.timing()
            record.first_token, record.per_output_token = (
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
        error: GatewayError = RateLimited(message)
        if limit is not None and limit.metric == "usd":
            error = QuotaExhausted(message)
        if limit is not None:
            error.labels = refusal_labels(limit)
        self._record.error_type = error.code
        self._record.note_refusal(error.labels, "stopped")
        return error
