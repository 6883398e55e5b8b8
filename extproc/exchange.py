"""One HTTP request as seen over one ext_proc stream: dispatch by phase, errors → local replies."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from extproc import headers as names
from extproc.config import Gateway, ModelRoute, Principal, Target
from extproc.contract import (
    CLIENT_BODY_FIELD,
    CLIENT_PATH_FIELD,
    HELD_HEADERS_FIELD,
    route_value,
)
from extproc.endpoints import (
    LocalAnswer,
    McpEndpoint,
    ModelCall,
    PostCall,
    StoredResponse,
    TokenCount,
    match_endpoint,
)
from extproc.endpoints.body import check_common, parse_body, read_model
from extproc.envoyapi.messages import (
    Answer,
    Headers,
    Message,
    Partial,
    ProcessingResponse,
    amend_response_headers,
    continue_and_read_response,
    local_reply,
    pass_through,
    replace_request,
    replace_request_headers,
)
from extproc.envoyapi.wire import Buffer
from extproc.errors import (
    INTERNAL_ERROR,
    BadRequest,
    GatewayError,
    UnsupportedMediaType,
    shorten,
)
from extproc.first_attempt import AttemptReports, FirstAttempt
from extproc.guardrails.policy import Screen, screens
from extproc.mcp_call import McpCall
from extproc.pipeline.auth import expiry_notice
from extproc.pipeline.cooldown import first_level_not_cooling
from extproc.pipeline.identity import identify
from extproc.pipeline.mcp import METHOD_NOT_FOUND, REFUSED, SERVER_UNAVAILABLE, McpRefusal
from extproc.pipeline.metering import Meter
from extproc.pipeline.refusals import refused, store_down
from extproc.pipeline.routing import alone_at, choose_target, resolve_route
from extproc.pipeline.screening import blocked_error, screen_request
from extproc.pipeline.stored_responses import (
    Owner,
    continued_target,
    keeper,
    keeps_responses,
    remember_answer,
    stored,
)
from extproc.pipeline.token_count import plan_count
from extproc.pipeline.upstream import Upstream, prepare_upstream
from extproc.pipeline.upstream_headers import from_provider, held_back, to_alias, to_provider
from extproc.providers import Location, provider_api
from extproc.quota.ledger import Ledger, Reservation, counting
from extproc.quota.limits import Price
from extproc.quota.standing import QuotaRefused, QuotaStoreDown
from extproc.response import (
    CREDENTIALS_REFUSED,
    PROVIDER_AUTH_FAILED,
    STREAM_STEP,
    ResponsePath,
)
from extproc.spend.alerts import BudgetAlerts
from extproc.spend.shipper import SpendLedger
from extproc.telemetry.cuts import STREAM_CUT, CutCauses
from extproc.telemetry.record import RequestRecord
from extproc.telemetry.requests import Telemetry
from extproc.telemetry.tracer import GatewaySpan
from extproc.translators.ir import JsonObject
from extproc.translators.openai import OPENAI
from extproc.translators.responses import RESPONSES
from extproc.translators.schema import ClientSide
from extproc.translators.translation import Translation
from extproc.usage import Usage, estimate_tokens

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Services:
    """What every exchange of one processor shares."""

    ledger: Ledger
    telemetry: Telemetry
    rng: random.Random
    cuts: CutCauses = field(default_factory=CutCauses)
    """Why streams were cut, as Envoy reports it."""
    first_attempts: AttemptReports = field(default_factory=AttemptReports)
    """How prepared first attempts of calls with fallback failed, as Envoy reports it."""
    spend: SpendLedger | None = None
    """The ledger every settled call is recorded in (None: no ledger)."""
    alerts: BudgetAlerts | None = None
    """Budget alerts, told which limits each settled call counted against."""


class Exchange:
    """Per-request state for one stream; the gateway snapshot is fixed when the stream opens."""

    __slots__ = (
        "_answer_expected_from",
        "_call",
        "_client_agent",
        "_client_body",
        "_client_headers",
        "_fallback",
        "_first_attempt",
        "_gateway",
        "_mcp",
        "_metadata",
        "_notices",
        "_output_screen",
        "_principal",
        "_record",
        "_replied",
        "_response",
        "_services",
        "_span",
        "_stores_as",
        "_unread_answer",
    )

    def __init__(
        self, gateway: Gateway, services: Services, metadata: Iterable[tuple[str, Any]] = ()
    ) -> None:
        """`metadata`: the gRPC metadata of the ext_proc stream (Envoy's trace context)."""
        self._gateway = gateway
        self._services = services
        self._metadata = metadata
        self._call: PostCall | None = None
        self._unread_answer: list[tuple[str, str]] | None = None
        """Set when the answer passes unread (token counts, stored responses): the headers to
        add to it."""
        self._stores_as: Owner | None = None
        """Set when the provider stores the response: who may reach it later."""
        self._fallback: ModelRoute | None = None
        """Set for an alias with fallback: which target answers is known only then."""
        self._client_body: JsonObject = {}
        self._answer_expected_from: Target | None = None
        """The target the response was opened for (its schema, its price)."""
        self._first_attempt: FirstAttempt | None = None
        """Set when this stream prepared the first attempt of a call with fallback."""
        self._principal: Principal | None = None
        self._notices: list[tuple[str, str]] = []
        """Headers every answer gets (the key's near expiry)."""
        self._client_headers: Headers = {}
        """The headers the client sent."""
        self._client_agent: str | None = None
        """The client's user agent, when the providers get it after the gateway's."""
        self._replied = False
        self._output_screen: Screen | None = None
        """Set when guardrails screen the answer: it is then read in the neutral form."""
        self._response: ResponsePath | None = None
        self._record = RequestRecord()
        self._span: GatewaySpan | None = None
        self._mcp: McpCall | None = None
        """Set for a call to an MCP server: it handles the stream's phases."""

    async def process(self, message: Message) -> Answer | Partial | None:
        """The answer to one message; None when Envoy expects none (a stream ended early)."""
        if self._replied:
            return pass_through(message.phase)
        return await self._guarded(self._dispatch(message), message.phase)

    async def resume(self) -> Answer | Partial | None:
        """The rest of an answer whose first part (a `Partial`) went out."""
        assert self._response is not None
        return await self._guarded(self._response.resume(), "response_body")

    async def _guarded(
        self, work: Awaitable[Answer | Partial | None], phase: str
    ) -> Answer | Partial | None:
        """What `work` answers, or the gateway's error answer when it fails."""
        try:
            return await work
        except McpRefusal as refusal:
            return await self._reply_mcp(refusal)
        except GatewayError as error:
            return await self._reply_failure(error)
        except Exception:
            log.exception("unexpected failure while processing %s", phase)
            return await self._reply_failure(INTERNAL_ERROR)

    async def _reply_failure(self, error: GatewayError) -> ProcessingResponse:
        """The gateway's error answer: a JSON-RPC error to a call to an MCP server, else in
        the client's schema."""
        if self._mcp is not None or self._record.operation == "mcp":
            code = REFUSED if error.status < 500 else SERVER_UNAVAILABLE
            return await self._reply_mcp(McpRefusal(error.status, code, error.message))
        return await self._reply_error(error)

    async def _dispatch(self, message: Message) -> Answer | Partial | None:
        if self._mcp is not None:
            return await self._mcp_phase(self._mcp, message)
        phase = message.phase
        if phase == "request_headers":
            headers, has_body = message.headers, not message.end_of_stream
            return await self._on_request_headers(headers, message.verified, has_body=has_body)
        if phase == "request_body":
            return await self._on_request_body(message.body)
        if phase == "response_headers":
            return await self._on_response_headers(message.headers)
        if phase == "response_body" and self._response is not None:
            chunk = message.body
            if isinstance(chunk, memoryview):  # (bodies of responses are read as bytes)
                chunk = bytes(chunk)
            return await self._response.on_body(chunk, end=message.end_of_stream)
        return pass_through(phase)

    def stall_timeout(self) -> float | None:
        """How long the provider may stay silent now (None: no limit here), while an event
        stream is being relayed."""
        return self._response.stall_timeout() if self._response is not None else None

    def on_stall(self) -> Answer:
        """The provider stayed silent too long mid-stream: what ends the client's stream."""
        assert self._response is not None
        return self._response.on_stall()

    async def finish(self) -> None:
        """The stream ended (completed, cut or cancelled): settle the reservation and report
        the request. Both happen after the last answer went out, off the response's path."""
        if self._mcp is not None:
            await self._mcp.finish()
        if self._response is not None:
            await self._response.finish()
            if self._services.alerts is not None:
                self._services.alerts.mark(self._response.reservation)
            if self._stores_as is not None:  # most calls: nothing stored, nothing to note
                store, answered = self._services.ledger.store, self._response.answer_id()
                await remember_answer(store, answered, self._stores_as)
        record = self._record
        if record.method is None:
            return
        if self._services.spend is not None:
            self._services.spend.record(record)
        if record.error_type == STREAM_CUT and record.request_id:
            # Who cut it, the client or the provider, only Envoy knows: it reports it shortly.
            self._services.cuts.when_known(record.request_id, self._report_cut)
        else:
            self._services.telemetry.finish(record, self._span)

    def _report_cut(self, cause: str | None) -> None:
        if cause is not None:
            self._record.error_type = cause
        self._services.telemetry.finish(self._record, self._span)

    async def _on_request_headers(
        self, headers: Headers, verified: Mapping[str, Any], *, has_body: bool
    ) -> ProcessingResponse:
        record = self._record
        record.method = _single(headers, names.METHOD)
        record.path = path = _single(headers, names.PATH).partition("?")[0]
        request_ids = headers.get(names.REQUEST_ID)
        record.request_id = request_ids[0] if request_ids else None
        self._span = self._services.telemetry.spans.begin(record, self._metadata, headers)
        endpoint = match_endpoint(record.method, path)
        if isinstance(endpoint, McpEndpoint):
            record.operation = "mcp"  # from here on, errors are JSON-RPC errors
        if isinstance(endpoint, ModelCall | TokenCount):
            self._call = endpoint  # from here on, errors speak the client's schema
        now = time.time()
        principal = identify(headers, verified, self._gateway, now)
        record.key_id, record.team = principal.key_id, principal.team
        record.principal_kind, record.subject = principal.kind, principal.subject
        self._notices = expiry_notice(principal, now, self._gateway.key_expiry_notice)
        record.key_expiring = bool(self._notices)
        if isinstance(endpoint, McpEndpoint):
            return self._open_mcp(endpoint, principal, headers, has_body=has_body)
        if isinstance(endpoint, LocalAnswer):
            self._replied = True
            record.status = 200
            answer = endpoint.answer(self._gateway, principal, path, headers)
            return local_reply(200, answer, headers=self._notices)
        self._principal = principal
        self._client_headers = headers
        if self._gateway.client_user_agent == "append":
            self._client_agent = headers.get(names.USER_AGENT, [None])[0]
        if isinstance(endpoint, StoredResponse):
            return await self._reach_stored_response(endpoint.response_id(path), principal, path)
        if not has_body:
            raise BadRequest("The request has no body; send a JSON object.")
        _check_encoding(headers)
        return continue_and_read_response()

    def _open_mcp(
        self, endpoint: McpEndpoint, principal: Principal, headers: Headers, *, has_body: bool
    ) -> ProcessingResponse:
        server = self._gateway.mcp_servers.get(endpoint.server)
        if server is None:
            raise McpRefusal(404, METHOD_NOT_FOUND, f"No MCP server is named {endpoint.server!r}.")
        spans = self._services.telemetry.spans
        self._mcp = McpCall(
            server,
            principal,
            self._record,
            ledger=self._services.ledger,
            policy=self._gateway.quota.on_store_error,
            max_message=self._gateway.listen.max_message,
            recorded=spans.content if spans.records_content else None,
        )
        return self._mcp.on_request_headers(headers, has_body=has_body)

    async def _mcp_phase(self, call: McpCall, message: Message) -> Answer:
        phase = message.phase
        if phase == "request_body":
            return await call.on_request_body(message.body)
        if phase == "response_headers":
            return call.on_response_headers(message.headers)
        if phase == "response_body":
            chunk = message.body
            return call.on_response_body(bytes(chunk), end=message.end_of_stream)
        return pass_through(phase)

    async def _reply_mcp(self, refusal: McpRefusal) -> ProcessingResponse:
        """The gateway's answer to a call to an MCP server, as a JSON-RPC error."""
        self._replied = True
        if self._mcp is not None:
            await self._mcp.refund()
        self._record.status, self._record.error_type = refusal.status, "mcp_refused"
        return local_reply(refusal.status, refusal.body())

    async def _reach_stored_response(
        self, response_id: str, principal: Principal, path: str
    ) -> ProcessingResponse:
        """A stored response, read or deleted at the provider that keeps it, for a caller
        that may use the alias it was created through. Its answer passes as it is."""
        store = self._services.ledger.store
        owner, target = await keeper(store, response_id, principal, self._gateway.models)
        location = provider_api(target.provider).locate_native(path, target)
        assert location is not None, "reachable targets serve the Responses API"
        self._record.alias = owner.alias if owner is not None else None
        self._note_target(target, provider_api(target.provider).otel_name)
        self._unread_answer = [*self._notices]
        # Passed on as the client sent it: the client speaks the provider's own API.
        set_headers, remove = self._provider_headers(target, location, None, same_schema=True)
        return replace_request_headers(set_headers=set_headers, remove_headers=remove)

    async def _on_request_body(self, raw: Buffer) -> Answer:
        call, principal = self._call, self._principal
        if call is None or principal is None:
            raise RuntimeError("request body before request headers")
        body = parse_body(raw)
        check_common(body)
        alias = read_model(body)
        call.check(body)
        if isinstance(call, TokenCount):
            return await self._count_tokens(call, principal, alias, body)
        record = self._record
        record.operation, record.alias, record.stream = (
            call.operation,
            alias,
            bool(body.get("stream")),
        )
        route = resolve_route(self._gateway.models, principal, alias)
        if self._gateway.guardrails:
            body = await self._screened(call, principal, route, body)
        previous = body.get("previous_response_id") if call.schema is RESPONSES else None
        if isinstance(previous, str) and keeps_responses(route):
            store, models = self._services.ledger.store, self._gateway.models
            target = await continued_target(store, route, principal, models, previous)
        elif route.retry is not None:
            return await self._forward_with_fallback(call, principal, route, body)
        else:
            target = choose_target(route, self._services.rng)
        provider = target.provider
        default_cap = self._gateway.output_cap(route)
        upstream = self._prepared(call, target, body, default_cap)
        translation = upstream.translation
        self._note_keeper(route, target, translation, body)
        record.provider, record.provider_name = provider.name, upstream.api.otel_name
        record.upstream_model = target.model
        if self._services.telemetry.spans.records_content:
            record.input_content = self._services.telemetry.spans.content(_input_text(call, body))
        estimate = _estimate(translation, upstream.body, default_cap)
        reservation = await self._reserve(principal, route, estimate, price=target.price)
        self._open_response(
            estimate,
            translation,
            reservation,
            price=target.price,
            idle_timeout=provider.idle_timeout,
        )
        upstream_body = upstream.body
        if reservation.clamped_output is not None:
            upstream_body = translation.provider.with_output_cap(
                translation.operation, upstream_body, reservation.clamped_output
            )
        payload = orjson.dumps(upstream_body)
        return self._send_upstream(
            target, upstream.location, payload, same_schema=translation.passed_through
        )

    async def _screened(
        self, call: PostCall, principal: Principal, route: ModelRoute, body: JsonObject
    ) -> JsonObject:
        """The body as the input guardrails let it go upstream (a block refuses the call
        before anything is reserved); notes the output guardrails for the answer."""
        screen_in, self._output_screen = screens(self._gateway.policies(principal, route))
        streamed_completion = (
            isinstance(call, ModelCall)
            and call.operation == "text_completion"
            and body.get("stream") is True
        )
        if self._output_screen is not None and streamed_completion:
            raise BadRequest(
                "Guardrails screen this model's answers, which this endpoint cannot do "
                "on a stream; call without stream, or use /v1/chat/completions.",
                param="stream",
                code="guardrail_unsupported",
            )
        if screen_in is None:
            return body
        span = self._services.telemetry.spans.child(self._span, "gateway.guardrails.input")
        try:
            screened, verdicts = await screen_request(screen_in, body)
        finally:
            if span is not None:
                span.end()
        self._record.guardrails.extend(verdicts.decisions)
        if verdicts.blocked is not None:
            raise blocked_error(verdicts.blocked)
        return screened

    def _prepared(
        self, call: ModelCall, target: Target, body: JsonObject, default_cap: int
    ) -> Upstream:
        return prepare_upstream(
            call,
            target,
            body,
            default_max_tokens=default_cap,
            neutral=self._output_screen is not None,
        )

    def _send_upstream(
        self, target: Target, location: Location, payload: bytes, *, same_schema: bool
    ) -> Answer:
        set_headers, remove = self._provider_headers(
            target, location, payload, same_schema=same_schema
        )
        return replace_request(set_headers=set_headers, remove_headers=remove, body=payload)

    def _provider_headers(
        self,
        target: Target,
        location: Location,
        payload: bytes | None,
        *,
        same_schema: bool,
        route: str | None = None,
    ) -> tuple[list[tuple[str, str]], list[str]]:
        """`route`: where Envoy sends the request (default: the target's provider)."""
        return to_provider(
            self._client_headers,
            target,
            location,
            payload,
            same_schema=same_schema,
            client_agent=self._client_agent,
            route=route or target.provider.name,
        )

    async def _count_tokens(
        self, count: TokenCount, principal: Principal, alias: str, body: JsonObject
    ) -> Answer:
        """Sent to a provider that counts natively, else answered from the gateway's estimate;
        not charged either way. The input guardrails apply as to the call it counts for."""
        self._record.alias = alias
        route = resolve_route(self._gateway.models, principal, alias)
        if self._gateway.guardrails:
            body = await self._screened(count, principal, route, body)
        plan = plan_count(count, route, body, self._services.rng)
        if isinstance(plan, bytes):
            self._replied = True
            self._record.status = 200
            return local_reply(200, plan, headers=[(names.TOKEN_COUNT, "estimate")])
        target = plan.target
        self._note_target(target, provider_api(target.provider).otel_name)
        self._unread_answer = [(names.TOKEN_COUNT, "provider"), *self._notices]
        # A count goes to a provider counting in the client's own schema.
        return self._send_upstream(target, plan.location, plan.payload, same_schema=True)

    def _on_unread_answer(self, headers: Headers, set_headers: list[tuple[str, str]]) -> Answer:
        record = self._record
        record.status = status = int(headers[names.STATUS][0])
        if status in CREDENTIALS_REFUSED:
            log.error("provider %s refused the gateway's credentials (%d)", record.provider, status)
            raise PROVIDER_AUTH_FAILED
        if status >= 400:
            record.error_type = str(status)
        add, remove, record.provider_request_id = from_provider(headers, set_headers)
        return amend_response_headers([*set_headers, *add], remove_headers=remove, body="skip")

    async def _forward_with_fallback(
        self, call: ModelCall, principal: Principal, route: ModelRoute, body: JsonObject
    ) -> Answer:
        """Reserve as for the target the first attempt goes to, and send the request on
        prepared for it when the starting level has only that target (else as the client
        sent it); each other attempt (Envoy's, one per target tried) prepares the client's
        body for its own target."""
        start = await first_level_not_cooling(self._services.ledger.store, route)
        first = alone_at(route, start)
        target = route.targets[0] if first is None else route.targets[first]
        default_cap = self._gateway.output_cap(route)
        upstream = self._prepared(call, target, body, default_cap)
        translation = upstream.translation
        self._note_target(target, upstream.api.otel_name)
        self._note_keeper(route, target, translation, body)
        # Which target answers is not known yet: the dearest one's price is reserved.
        estimate = _estimate(translation, upstream.body, default_cap)
        reservation = await self._reserve(principal, route, estimate, price=route.price)
        self._open_response(
            estimate,
            translation,
            reservation,
            price=route.price,
            idle_timeout=max(target.provider.idle_timeout for target in route.targets),
        )
        upstream_body = upstream.body
        if reservation.clamped_output is not None:
            body = call.schema.provider.with_output_cap(
                call.operation, body, reservation.clamped_output
            )
            upstream_body = translation.provider.with_output_cap(
                translation.operation, upstream_body, reservation.clamped_output
            )
        self._fallback, self._client_body, self._answer_expected_from = route, body, target
        client_payload = orjson.dumps(body)
        # Each attempt's span continues this request's span; it prepares the body for the
        # endpoint the client called.
        context = self._services.telemetry.spans.context_of(self._span)
        shared = {**context, CLIENT_PATH_FIELD: call.path}
        if first is None:
            set_headers, remove = to_alias(
                self._client_headers, route, call.schema, client_payload, start=start
            )
            return replace_request(
                set_headers=set_headers, remove_headers=remove, body=client_payload, shared=shared
            )
        payload = orjson.dumps(upstream_body)
        set_headers, remove = self._provider_headers(
            target,
            upstream.location,
            payload,
            same_schema=translation.passed_through,
            route=route_value(route.alias, start),
        )
        set_headers.append((names.PREPARED_FOR, str(first)))
        shared[CLIENT_BODY_FIELD] = client_payload.decode()
        if held := held_back(self._client_headers, route, call.schema, remove):
            shared[HELD_HEADERS_FIELD] = orjson.dumps(held).decode()
        self._first_attempt = FirstAttempt(
            route,
            first,
            self._record.request_id,
            context,
            store=self._services.ledger.store,
            telemetry=self._services.telemetry,
            reports=self._services.first_attempts,
        )
        return replace_request(
            set_headers=set_headers, remove_headers=remove, body=payload, shared=shared
        )

    async def _on_response_headers(self, headers: Headers) -> Answer:
        if self._unread_answer is not None:
            return self._on_unread_answer(headers, self._unread_answer)
        response = self._response
        if response is None:
            return pass_through("response_headers")
        if self._fallback is not None:
            if names.REFUSED in headers:
                return await self._pass_attempt_refusal(response, headers)
            tag = headers.get(names.TARGET, [None])[0]
            self._note_answering_target(tag)
            if self._first_attempt is not None:
                await self._first_attempt.on_answer(headers, tagged=tag is not None)
        return response.on_headers(headers)

    async def _pass_attempt_refusal(self, response: ResponsePath, headers: Headers) -> Answer:
        """An attempt found the request unfit for its target and answered for it, in the
        client's schema: the answer goes on as it is, and nothing ran to be charged."""
        await response.refund()
        record = self._record
        record.status, record.error_type = int(headers[names.STATUS][0]), headers[names.REFUSED][0]
        return amend_response_headers([], remove_headers=[names.REFUSED], body="skip")

    def _note_answering_target(self, index: str | None) -> None:
        route, call = self._fallback, self._call
        answered = self._response
        if route is None or not isinstance(call, ModelCall) or index is None or answered is None:
            return
        target = route.targets[int(index)]
        if target is self._answer_expected_from:
            answered.answered_by(None, target.price)
            return
        default_cap = self._gateway.output_cap(route)
        upstream = self._prepared(call, target, self._client_body, default_cap)
        self._note_target(target, upstream.api.otel_name)
        self._note_keeper(route, target, upstream.translation, self._client_body)
        answered.answered_by(upstream.translation, target.price)

    def _note_keeper(
        self, route: ModelRoute, target: Target, translation: Translation, body: JsonObject
    ) -> None:
        """Note who may reach the response later, when its provider stores it."""
        keeps = stored(translation, body)
        self._stores_as = Owner(route.alias, target.provider.name) if keeps else None

    def _note_target(self, target: Target, otel_name: str) -> None:
        record = self._record
        record.provider, record.provider_name = target.provider.name, otel_name
        record.upstream_model = target.model

    async def _reserve(
        self, principal: Principal, route: ModelRoute, estimate: Usage, *, price: Price | None
    ) -> Reservation:
        """Reserve the request's estimated cost; the reservation says whether a clamping limit
        lowered the output cap."""
        # A span for the step only where there is one (an unmetered call reserves nothing).
        spans = self._services.telemetry.spans
        metered = counting(principal.limits, route.alias)
        span = spans.child(self._span, "gateway.quota.reserve") if metered else None
        try:
            reservation = await self._services.ledger.reserve(
                principal.limits,
                alias=route.alias,
                price=price,
                estimate=estimate,
                policy=self._gateway.quota.on_store_error,
                upfront_output=min(estimate.output_tokens, STREAM_STEP)
                if self._record.stream
                else None,
            )
        except QuotaRefused as refusal:
            raise refused(refusal) from None
        except QuotaStoreDown:
            raise store_down() from None
        finally:
            if span is not None:
                span.end()
        self._record.quota = reservation.decision
        self._record.reserved_at = reservation.reserved_at or None
        if self._services.spend is not None:  # (only the ledger's rows name them)
            self._record.counters = tuple(counter for _, counter, _ in reservation.windows())
        return reservation

    def _open_response(
        self,
        estimate: Usage,
        translation: Translation,
        reservation: Reservation,
        *,
        price: Price | None,
        idle_timeout: float,
    ) -> None:
        """The response side of a reserved call: it meters the answer and settles."""
        telemetry = self._services.telemetry
        meter = Meter(
            estimate,
            translation,
            started=time.monotonic(),
            keep_text=telemetry.spans.records_content,
            max_event=self._gateway.listen.max_request_body,
            screen=self._output_screen,
        )
        self._response = ResponsePath(
            meter,
            reservation,
            translation=translation,
            price=price,
            record=self._record,
            telemetry=telemetry,
            idle_timeout=idle_timeout,
            max_message=self._gateway.listen.max_request_body,
            expose_provider=self._gateway.expose_provider,
            expose_cost=self._gateway.spend.expose_cost
            or (self._principal is not None and self._principal.expose_cost),
            notices=self._notices,
            screen=self._output_screen,
        )

    async def _reply_error(self, error: GatewayError) -> ProcessingResponse:
        self._replied = True
        record = self._record
        record.status, record.error_type = error.status, error.code or error.type
        if error.labels:
            record.note_refusal(error.labels, "refused")
        if self._response is not None:
            await self._response.refund()
        client = self._client_schema()
        return local_reply(
            error.status, client.build_error(error.api_error()), headers=error.headers
        )

    def _client_schema(self) -> ClientSide:
        """The schema errors are answered in: the endpoint's, else OpenAI's."""
        schema = self._call.schema if self._call is not None else OPENAI
        assert schema.client is not None
        return schema.client


def _estimate(translation: Translation, body: JsonObject, default_cap: int) -> Usage:
    """What a call is reckoned to cost before it runs: its input as the provider gets it
    (`body`), and its output cap (`default_cap` when it asks for none)."""
    provider, operation = translation.provider, translation.operation
    cap = provider.output_cap(operation, body)
    fields = provider.input_fields.get(operation, ())
    tokens = estimate_tokens(body[name] for name in fields if name in body)
    return Usage(tokens, default_cap if cap is None else cap)


def _check_encoding(headers: dict[str, list[str]]) -> None:
    """Gzip bodies are decoded by Envoy before the processor sees them; any other encoding
    would be read as garbage."""
    encodings = [value.strip().lower() for value in headers.get(names.CONTENT_ENCODING, ())]
    unknown = [value for value in encodings if value not in ("", "identity")]
    if unknown:
        raise UnsupportedMediaType(
            f"Content-Encoding {shorten(unknown[0])} is not supported; send the body "
            "uncompressed or gzip-compressed."
        )


def _input_text(call: ModelCall, body: JsonObject) -> str:
    """The request's input as JSON text (for recording, when that is on)."""
    fields = call.schema.provider.input_fields.get(call.operation, ())
    return orjson.dumps({name: body[name] for name in fields if name in body}).decode()


def _single(headers: dict[str, list[str]], name: str) -> str:
    values = headers.get(name)
    if not values:
        raise BadRequest(f"The request has no {name} header.")
    return values[0]
