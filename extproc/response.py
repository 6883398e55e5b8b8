"""The response side of one model call: rate-limit headers, answers and errors in the client's
schema, event streams relayed (and cut when a budget runs out), and the quota settlement."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import orjson

from extproc import headers as names
from extproc.contract import SHARED_METADATA
from extproc.envoyapi.messages import (
    Answer,
    Headers,
    Partial,
    amend_held_headers,
    amend_response_headers,
    pass_through,
    relay_bodies,
    relay_body,
    replace_response_body,
    with_metadata,
)
from extproc.errors import BadGateway, GatewayError, GatewayTimeout, shorten
from extproc.guardrails.policy import Screen, Verdicts
from extproc.guardrails.walk import rewrite_texts
from extproc.pipeline.cost import Charged, with_cost
from extproc.pipeline.inflate import INFLATABLE, Inflater
from extproc.pipeline.metering import Meter
from extproc.pipeline.ratelimit_headers import ratelimit_headers
from extproc.pipeline.refusals import stopped_mid_stream
from extproc.pipeline.relay import Piece, StreamRelay
from extproc.pipeline.screening import BLOCKED, blocked_error, screen_answer, screen_request
from extproc.pipeline.stream_screen import StreamScreen
from extproc.pipeline.upstream_headers import from_provider
from extproc.quota.ledger import Reservation
from extproc.quota.limits import Price
from extproc.sse import EVENT_STREAM, Block, EventTooLarge
from extproc.telemetry.cuts import STREAM_CUT
from extproc.telemetry.record import RequestRecord
from extproc.telemetry.requests import Telemetry
from extproc.translators.ir import ChatAnswer, ChatRequest, JsonObject
from extproc.translators.translation import Translation

log = logging.getLogger(__name__)

STREAM_STEP = 256
"""Output tokens a stream reserves at a time: at first (though its whole output cap must fit)
and whenever it outgrows its reservation. What a stream cut without settlement (a killed
processor) stays charged is its input and at most this much output beyond what it sent."""
CREDENTIALS_REFUSED = (401, 403)
PROVIDER_AUTH_FAILED = BadGateway(
    "The provider refused the gateway's credentials; the gateway operator has been told "
    "(see its logs).",
    code="provider_auth_failed",
)
"""The provider refusing the gateway's own key is the operator's problem, not the client's:
a 502 that says so, without echoing the provider's text."""
JSON = "application/json"
EVENT_TOO_LARGE = BadGateway(
    "The provider streamed an event larger than the gateway relays; the stream was ended.",
    code="event_too_large",
)
TOO_LONG_TO_JUDGE = BadGateway(
    "The answer grew longer than the gateway holds back for its guardrails' external check; "
    "the stream was ended.",
    code="answer_too_long",
)
UPSTREAM_TIMEOUT = GatewayTimeout(
    "The provider stopped sending its answer; the stream was ended.", code="upstream_timeout"
)


class ResponsePath:
    __slots__ = (
        "_cost_told",
        "_expose_cost",
        "_expose_provider",
        "_final",
        "_held",
        "_idle_timeout",
        "_inflater",
        "_max_message",
        "_meter",
        "_notices",
        "_price",
        "_record",
        "_relayed_any",
        "_reservation",
        "_screen",
        "_settled",
        "_stopped",
        "_telemetry",
        "_translation",
        "_withheld",
        "_withheld_size",
    )

    def __init__(
        self,
        meter: Meter,
        reservation: Reservation,
        *,
        translation: Translation,
        price: Price | None,
        record: RequestRecord,
        telemetry: Telemetry,
        idle_timeout: float,
        max_message: int,
        expose_provider: bool = False,
        expose_cost: bool = False,
        notices: Sequence[tuple[str, str]] = (),
        screen: Screen | None = None,
    ) -> None:
        """`max_message`: the most bytes of body one answer to Envoy may carry;
        `expose_cost`: tell the client what the call cost (headers on JSON answers, the final
        usage event of a stream); `notices`: headers every answer gets (the key's near
        expiry); `screen`: the output guardrails (JSON answers here; streams in the meter's
        relay)."""
        self._meter = meter
        self._idle_timeout = idle_timeout
        self._max_message = max_message
        self._expose_provider = expose_provider
        self._expose_cost = expose_cost
        self._cost_told = False
        """The client's stream carried its cost already."""
        self._final: tuple[Charged | None] | None = None
        """What the call is charged, once its answer ended (a cut stream's, at `finish`)."""
        self._notices = notices
        self._reservation = reservation
        self._translation = translation
        self._price = price
        self._record = record
        self._telemetry = telemetry
        self._screen = screen
        self._withheld: list[bytes] = []
        """A stream held back whole until external checks judged it."""
        self._withheld_size = 0
        self._stopped = False
        self._settled = False
        self._inflater: Inflater | None = None
        """Set when the provider compressed its answer anyway."""
        self._relayed_any = False
        """A stream's first event was relayed."""
        self._held: tuple[list[Block], bool, EventTooLarge | None] | None = None
        """Events read with a stream's first one, relayed once it went (see `resume`)."""

    @property
    def reservation(self) -> Reservation:
        return self._reservation

    def answered_by(self, translation: Translation | None, price: Price | None) -> None:
        """Which target of an alias with fallback answered: the call costs its price, and
        when it is not the one first prepared for, its answer is read in its provider's
        schema (`translation`)."""
        self._price = price
        self._reservation.reprice(price)
        if translation is not None:
            self._translation = translation
            self._meter.answered_by(translation)

    def on_headers(self, headers: Headers) -> Answer:
        status = int(headers[names.STATUS][0])
        content_type = (headers.get(names.CONTENT_TYPE) or [""])[0]
        encoding = (headers.get(names.CONTENT_ENCODING) or ["identity"])[0].strip().lower()
        if encoding in INFLATABLE:
            self._inflater = Inflater()
        elif encoding != "identity":
            return self._unreadable(encoding, status, headers)
        streamed = self._meter.on_headers(status, content_type)
        if attempts := headers.get(names.ATTEMPT_COUNT):
            self._record.attempts = int(attempts[0])
        set_headers = ratelimit_headers(self._reservation.standings)
        if self._expose_provider and self._record.provider:
            set_headers.append((names.PROVIDER, self._record.provider))
        self._record.status = status
        if status >= 400:
            self._record.error_type = str(status)
            set_headers.append((names.CONTENT_TYPE, JSON))
            if status in CREDENTIALS_REFUSED:
                set_headers.append((names.STATUS, str(self._credentials_refused(status))))
        elif self._translation.translated:
            # A translated stream is the client's server-sent events, whatever the provider's
            # framing was.
            set_headers.append((names.CONTENT_TYPE, EVENT_STREAM if streamed else JSON))
        rewritten = status >= 400 or self._translation.translated or self._inflater is not None
        # A body the processor rewrites has its length (and encoding) set anew.
        remove = [names.CONTENT_LENGTH] if rewritten else []
        if self._inflater is not None:
            remove.append(names.CONTENT_ENCODING)
        set_headers, dropped = self._filtered(headers, set_headers)
        remove += dropped
        if streamed:
            return amend_response_headers(set_headers, remove_headers=remove, body="relay")
        return amend_response_headers(
            set_headers, remove_headers=remove, body="whole" if rewritten else None
        )

    def _filtered(
        self, headers: Headers, set_headers: list[tuple[str, str]]
    ) -> tuple[list[tuple[str, str]], list[str]]:
        """The provider's answer headers as the client gets them (see `upstream_headers`):
        what to set, and what to remove."""
        set_headers = [*set_headers, *self._notices]
        add, remove, self._record.provider_request_id = from_provider(headers, set_headers)
        return [*set_headers, *add], remove

    def _unreadable(self, encoding: str, status: int, headers: Headers) -> Answer:
        """An answer in an encoding the gateway cannot decode (though it asked for none):
        passed on untouched and charged its estimate, unless it needed translating."""
        log.warning(
            "provider %s answered with content-encoding %s although identity was asked for",
            self._record.provider,
            shorten(encoding),
        )
        if self._translation.translated:
            raise BadGateway(
                "The provider's answer is in an encoding the gateway cannot translate.",
                code="bad_encoding",
            )
        self._record.status = status
        self._meter.on_headers(status, "")  # its body goes unread: the estimate stands
        standings, remove = self._filtered(headers, ratelimit_headers(self._reservation.standings))
        return amend_response_headers(standings, remove_headers=remove, body="skip")

    async def on_body(self, chunk: bytes, *, end: bool) -> Answer | Partial | None:
        """The answer for a body chunk; None once a stream was ended early (Envoy has
        finished the response and needs nothing more)."""
        if self._stopped:
            return None
        if self._inflater is not None:
            chunk = self._inflater.feed(chunk, end=end)
        if self._meter.relay is not None:
            return await self._relay(chunk, end=end)
        self._meter.on_json_body(chunk, end=end)
        status = self._meter.status or 0
        if not end:
            return pass_through("response_body")
        return await self._whole_answer(chunk, status)

    async def _whole_answer(self, chunk: bytes, status: int) -> Answer:
        """The answer to a JSON body, read whole: in the client's schema, with its cost."""
        answer: bytes | None = None
        set_headers: list[tuple[str, str]] = []
        if status >= 400:
            answer, set_headers = self._error_answer(status, chunk)
        elif self._screen is not None and self._meter.succeeded:
            answer = await self._screened_answer(self._screen)
        elif self._translation.translated and self._meter.succeeded:
            answer = self._translation.answer(self._parsed_answer(), self._meter.estimate)
        if answer is None and self._inflater is not None:
            answer = chunk  # the inflated body, as the provider meant it
        charged = self._ended()
        if charged is not None and self._expose_cost:
            set_headers = [*set_headers, *charged.headers()]
        if answer is not None:
            reply: Answer = replace_response_body(answer, set_headers=set_headers)
        elif set_headers:
            reply = amend_held_headers(set_headers)
        else:
            reply = pass_through("response_body")
        return (
            reply if charged is None else with_metadata(reply, SHARED_METADATA, charged.metadata())
        )

    def _charged(self) -> Charged | None:
        """What the call is charged, as it stands (None: nothing, it is refunded)."""
        if self._final is not None:
            return self._final[0]
        usage = self._meter.usage(self._reservation.output_tokens)
        return None if usage is None else Charged.of(usage, self._price)

    def _ended(self) -> Charged | None:
        """The answer ended: what the call is charged, for good."""
        charged = self._charged()
        self._final = (charged,)
        return charged

    def _parsed_answer(self) -> JsonObject:
        parsed = self._meter.answer()
        if not isinstance(parsed, dict):
            raise BadGateway("The provider's answer is not a JSON object.", code="bad_answer")
        return parsed

    async def _screened_answer(self, screen: Screen) -> bytes | None:
        """The answer as the output guardrails let the client see it (None: unchanged). A
        chat answer is screened in the neutral form; another passing through (a text
        completion), in its own JSON."""
        parsed, translation = self._parsed_answer(), self._translation
        if isinstance(translation.request, ChatRequest):
            neutral = translation.read_answer(parsed, self._meter.estimate)
            assert isinstance(neutral, ChatAnswer)
            neutral, verdicts = await screen_answer(screen, neutral)
            self._note(verdicts)
            return translation.write_answer(neutral)
        if translation.translated:  # embeddings: vectors, no text to screen
            return translation.answer(parsed, self._meter.estimate)
        screened, verdicts = await screen_request(screen, parsed)
        self._note(verdicts)
        if verdicts.blocked is not None:  # every text of the answer becomes the refusal
            refusal = blocked_error(verdicts.blocked).message
            screened = rewrite_texts(parsed, lambda _: refusal)
        return None if screened is parsed else orjson.dumps(screened)

    def _note(self, verdicts: Verdicts) -> None:
        self._record.guardrails.extend(verdicts.decisions)
        if verdicts.blocked is not None:
            self._record.error_type = BLOCKED

    def _error_answer(self, status: int, body: bytes) -> tuple[bytes | None, list[tuple[str, str]]]:
        """A provider's error in the client's schema (None: unchanged, it already is), and
        the headers that change with it."""
        error = self._translation.error(status, body)
        client = self._translation.client
        if error.credentials_refused:
            refused = client.build_error(PROVIDER_AUTH_FAILED.api_error())
            if status in CREDENTIALS_REFUSED:  # the headers said so already
                return refused, []
            # Some providers refuse a key with a 400 that only its body explains.
            return refused, [(names.STATUS, str(self._credentials_refused(status)))]
        if self._translation.passed_through and client.is_native_error(body):
            return None, []
        return client.build_error(error), []

    def _credentials_refused(self, status: int) -> int:
        log.error(
            "provider %s refused the gateway's credentials (%d)", self._record.provider, status
        )
        self._record.status = PROVIDER_AUTH_FAILED.status
        return PROVIDER_AUTH_FAILED.status

    async def finish(self) -> None:
        """Settle once: the real usage, or what the meter can vouch for."""
        if self._settled:
            return
        self._settled = True
        charged = self._charged()
        await self._reservation.settle(None if charged is None else charged.usage)
        record = self._record
        if charged is not None:
            record.usage, record.cost_usd = charged.usage, charged.usd
        record.response_model = self._meter.response_model()
        if self._telemetry.spans.records_content:
            output = self._meter.output_text()
            if self._screen is not None:  # recorded as the client saw it
                output = self._screen.apply(output, Verdicts())
            record.output_content = self._telemetry.spans.content(output)
        if self._meter.relay is not None:
            if self._meter.relay.screen is not None:
                self._note(self._meter.relay.screen.verdicts)
            if not self._meter.relay.usage.done and not self._stopped:
                # Envoy reset the stream before the provider's last event: the client left,
                # or the provider's connection broke (the processor cannot tell which).
                record.error_type = record.error_type or STREAM_CUT
            timing = self._meter.relay.timing()
            record.first_token, record.per_output_token = (
                timing.first_token,
                timing.per_output_token,
            )

    def answer_id(self) -> str | None:
        """The provider's id of a successful answer."""
        return self._meter.answer_id() if self._meter.succeeded else None

    async def refund(self) -> None:
        if not self._settled:
            self._settled = True
            await self._reservation.settle(None)

    async def _relay(self, chunk: bytes, *, end: bool) -> Answer | Partial:
        relay = self._meter.relay
        assert relay is not None
        try:
            blocks, oversized = relay.frame(chunk, end=end), None
        except EventTooLarge as error:
            blocks, oversized = error.before, error
        first_of_many = not self._relayed_any and len(blocks) > 1 and relay.screen is None
        self._relayed_any = self._relayed_any or bool(blocks)
        if first_of_many:
            # The first event the client sees goes out alone: its first token does not wait
            # for the events read with it (a provider's burst, a cached answer).
            first: list[Piece] = []
            taken = 0
            while taken < len(blocks) - 1 and not any(piece.raw for piece in first):
                first += relay.pieces(blocks[taken : taken + 1], end=False)
                taken += 1
            self._held = (blocks[taken:], end, oversized)
            return Partial(await self._deliver(relay, first, end=False, oversized=None))
        pieces = relay.pieces(blocks, end=end and oversized is None)
        return await self._deliver(relay, pieces, end=end, oversized=oversized)

    async def resume(self) -> Answer | None:
        """The rest of the chunk whose first event went out alone; None when that event ended
        the stream (a budget ran out)."""
        relay, held = self._meter.relay, self._held
        assert relay is not None and held is not None
        self._held = None
        if self._stopped:
            return None
        blocks, end, oversized = held
        pieces = relay.pieces(blocks, end=end and oversized is None)
        return await self._deliver(relay, pieces, end=end, oversized=oversized)

    async def _deliver(
        self, relay: StreamRelay, pieces: list[Piece], *, end: bool, oversized: EventTooLarge | None
    ) -> Answer:
        """The answer that sends the client these pieces; `oversized`: the event after them
        was over the limit (the stream ends there)."""
        out: list[bytes] = []
        for piece in pieces:
            if not await self._covered(piece.output_tokens):
                out.append(relay.stop(self._spent_error()))
                self._stopped = True
                return self._relayed(b"".join(out), end=True)
            out.append(relay.deliver(piece))
        if relay.screen is not None and relay.screen.blocked:
            # (The screen lets nothing through after the block: every piece went.)
            return self._blocked(relay, relay.screen, out)
        if relay.screen is not None and relay.screen.texts is not None and not oversized:
            return await self._judged_whole(relay, relay.screen, out, end=end)
        if oversized is not None:
            log.warning("provider %s: %s; the stream is ended", self._record.provider, oversized)
            self._record.error_type = EVENT_TOO_LARGE.code
            out.append(relay.stop(EVENT_TOO_LARGE, spent=False))
            self._stopped = end = True
        return self._relayed(b"".join(out), end=end)

    def _relayed(self, body: bytes, *, end: bool) -> Answer:
        """The client's bytes for a chunk: with the call's cost in the final usage event when
        the client sees costs, and, at the end, the cost for Envoy."""
        charged = self._ended() if end else None
        if self._expose_cost and not self._cost_told and b"usage" in body:
            charged = charged or self._charged()
            if charged is not None:
                final_usage = self._translation.client.final_usage
                body, self._cost_told = with_cost(body, final_usage, charged)
        answer = relay_bodies(body, end=end, limit=self._max_message)
        if end and charged is not None:
            return with_metadata(answer, SHARED_METADATA, charged.metadata())
        return answer

    def _blocked(self, relay: StreamRelay, screen: StreamScreen, out: list[bytes]) -> Answer:
        """End the stream after what was safe to send: a policy blocked the rest. Only what
        the provider streamed counts (it is cut here)."""
        assert screen.verdicts.blocked is not None
        out.append(relay.stop(blocked_error(screen.verdicts.blocked), spent=False))
        self._stopped = True
        return self._relayed(b"".join(out), end=True)

    async def _judged_whole(
        self, relay: StreamRelay, screen: StreamScreen, out: list[bytes], *, end: bool
    ) -> Answer:
        """Hold the stream back until it ends, then let the external checks judge all its
        text: the client gets it all, or only the error event. What is held stays within one
        message's limit: a longer answer ends the stream, and is charged what was streamed."""
        self._withheld += out
        self._withheld_size += sum(map(len, out))
        if self._withheld_size > self._max_message:
            self._withheld = []
            self._record.error_type = TOO_LONG_TO_JUDGE.code
            self._stopped = True
            return self._relayed(relay.stop(TOO_LONG_TO_JUDGE, spent=False), end=True)
        if not end:
            return relay_body(b"", end=False)
        await screen.screen.judge_externally(screen.texts or (), screen.verdicts)
        if screen.blocked:
            return self._blocked(relay, screen, [])
        withheld, self._withheld = b"".join(self._withheld), []
        return self._relayed(withheld, end=True)

    async def _covered(self, output_tokens: int) -> bool:
        """Whether the reservation covers this much output, growing it when it can."""
        reservation = self._reservation
        while output_tokens > reservation.output_tokens:
            needed = output_tokens - reservation.output_tokens
            if not await reservation.extend(max(STREAM_STEP, needed)):
                return False
        return True

    def stall_timeout(self) -> float | None:
        """The provider's idle timeout while a stream is relayed, else None."""
        if self._meter.relay is None or self._stopped:
            return None
        return self._idle_timeout

    def on_stall(self) -> Answer:
        """End the client's stream with an error event: the provider went silent."""
        relay = self._meter.relay
        assert relay is not None
        self._stopped = True
        self._record.error_type = UPSTREAM_TIMEOUT.code
        log.warning(
            "provider %s sent nothing for %.0fs mid-stream: the stream is ended",
            self._record.provider,
            self._idle_timeout,
        )
        answer = self._relayed(relay.stop(UPSTREAM_TIMEOUT, spent=False), end=True)
        assert not isinstance(answer, list), "an error event fits one answer"
        return answer

    def _spent_error(self) -> GatewayError:
        error = stopped_mid_stream(self._reservation.spent)
        self._record.error_type = error.code
        self._record.note_refusal(error.labels, "stopped")
        return error
