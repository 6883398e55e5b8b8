"""One attempt of a call to an alias with fallback, as the ext_proc filter in the alias
cluster's upstream filters shows it: the client's request, prepared for the target Envoy
picked for this attempt (its schema, model, key and path). When the request's own stream
prepared the request for another target, the client's body and the headers that target may
not get come with the attempt (its metadata); Envoy's body is then that other target's.

A throttling answer with a wait (`Retry-After`, `x-ratelimit-reset-*`) puts the target in
cooldown; cooldowns live in the quota store, so every replica sees them, and requests start
past levels wholly cooling."""

from __future__ import annotations

import orjson

from extproc import headers as names
from extproc.config import Gateway, ModelRoute, Target
from extproc.contract import (
    CLIENT_BODY_FIELD,
    CLIENT_PATH_FIELD,
    CLUSTER_ATTRIBUTE,
    HELD_HEADERS_FIELD,
    METHOD_ATTRIBUTE,
    PATH_ATTRIBUTE,
    TARGET_ATTRIBUTE,
    alias_of,
)
from extproc.endpoints import ModelCall, match_endpoint
from extproc.endpoints.body import parse_body
from extproc.envoyapi.messages import (
    Answer,
    Headers,
    Message,
    ProcessingResponse,
    amend_response_headers,
    local_reply,
    pass_through,
    replace_request,
)
from extproc.envoyapi.wire import Buffer
from extproc.errors import GatewayError
from extproc.pipeline.cooldown import cooldown_name, note_throttling
from extproc.pipeline.upstream import prepare_upstream
from extproc.pipeline.upstream_headers import kept_for, to_provider
from extproc.providers import provider_api
from extproc.quota.store import QuotaStore
from extproc.telemetry.record import AttemptRecord
from extproc.telemetry.requests import Telemetry
from extproc.telemetry.tracer import GatewaySpan


def is_attempt(message: Message) -> bool:
    """Whether a stream's first message comes from the per-attempt filter."""
    return TARGET_ATTRIBUTE in message.attributes


class Attempt:
    __slots__ = (
        "_call",
        "_client_body",
        "_gateway",
        "_headers",
        "_held",
        "_index",
        "_record",
        "_route",
        "_span",
        "_store",
        "_target",
        "_telemetry",
    )

    def __init__(self, gateway: Gateway, store: QuotaStore, telemetry: Telemetry) -> None:
        self._gateway = gateway
        self._store = store
        self._telemetry = telemetry
        self._call: ModelCall | None = None
        self._route: ModelRoute | None = None
        self._target: Target | None = None
        self._headers: Headers = {}
        """The attempt's request headers, as Envoy holds them for it."""
        self._client_body: str | None = None
        """The client's body, when Envoy holds one prepared for another target."""
        self._held: dict[str, str] = {}
        """Client headers the request's stream held back from another target."""
        self._index = ""
        """The target's place among the alias's targets, as Envoy's endpoint metadata says."""
        self._record: AttemptRecord | None = None
        self._span: GatewaySpan | None = None

    async def process(self, message: Message) -> Answer | None:
        if message.phase == "request_headers":
            self._begin(message)
        elif message.phase == "request_body" and self._call and self._route and self._target:
            try:
                raw = message.body if self._client_body is None else self._client_body.encode()
                return self._prepared(self._call, self._route, self._target, raw)
            except GatewayError as error:
                return self._refused(self._call, error)
        elif message.phase == "response_headers" and self._target and self._record:
            self._record.status = status = int(message.headers[names.STATUS][0])
            await note_throttling(
                self._store, self._telemetry, self._target, status, message.headers
            )
            # Tells the request's own stream whose schema the answer is in.
            return amend_response_headers([(names.TARGET, self._index)])
        return pass_through(message.phase)

    async def finish(self) -> None:
        """The attempt is over (answered, or cut by a reset or its timeout): report it. Nothing
        else is held per attempt: the request's own stream settles."""
        if self._record is not None:
            self._telemetry.finish_attempt(self._record, self._span)

    def _begin(self, message: Message) -> None:
        attributes = message.attributes
        path = message.shared.get(CLIENT_PATH_FIELD) or attributes[PATH_ATTRIBUTE]
        endpoint = match_endpoint(attributes[METHOD_ATTRIBUTE], path)
        self._call = endpoint if isinstance(endpoint, ModelCall) else None
        self._route = route = self._gateway.models[alias_of(attributes[CLUSTER_ATTRIBUTE])]
        self._index = attributes[TARGET_ATTRIBUTE]
        self._target = target = route.targets[int(self._index)]
        self._headers = message.headers
        self._client_body = message.shared.get(CLIENT_BODY_FIELD)
        if held := message.shared.get(HELD_HEADERS_FIELD):
            self._held = orjson.loads(held)
        number = message.headers.get(names.ATTEMPT_COUNT, [""])[0]
        self._record = record = AttemptRecord(
            alias=route.alias,
            target=cooldown_name(target),
            provider_name=provider_api(target.provider).otel_name,
            model=target.model,
            number=int(number) if number.isdigit() else None,
        )
        self._span = self._telemetry.spans.begin_attempt(record, message.shared)

    def _prepared(self, call: ModelCall, route: ModelRoute, target: Target, raw: Buffer) -> Answer:
        default_cap = self._gateway.output_cap(route)
        upstream = prepare_upstream(call, target, parse_body(raw), default_max_tokens=default_cap)
        payload = orjson.dumps(upstream.body)
        # What is on the request now is the client's (kept by the request's own stream for
        # any target), and an earlier attempt's provider headers: this target's allow-list
        # decides (Envoy's attempt count, for this attempt's span only, goes too).
        agent = self._headers.get(names.USER_AGENT, [None])[0]
        same_schema = upstream.translation.passed_through
        set_headers, remove = to_provider(
            self._headers,
            target,
            upstream.location,
            payload,
            same_schema=same_schema,
            client_agent=agent if self._gateway.client_user_agent == "append" else None,
        )
        kept = kept_for(target, same_schema=same_schema)
        set_headers += [(name, value) for name, value in self._held.items() if name in kept]
        return replace_request(set_headers=set_headers, remove_headers=remove, body=payload)

    def _refused(self, call: ModelCall, error: GatewayError) -> ProcessingResponse:
        """This target cannot take the request (a field its provider has no equivalent
        for): the client learns why, in its own schema, as the answer of this attempt."""
        if self._record is not None:
            self._record.status = error.status
        client = call.schema.client
        assert client is not None
        refused = (names.REFUSED, error.code or error.type)
        return local_reply(
            error.status, client.build_error(error.api_error()), headers=[*error.headers, refused]
        )
