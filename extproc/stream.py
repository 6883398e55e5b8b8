"""One HTTP request as seen over one ext_proc stream: dispatch by phase, errors → local replies."""

from __future__ import annotations

import logging
import random

import orjson

from extproc import headers as names
from extproc.config import Gateway, Principal
from extproc.endpoints import LocalAnswer, ModelCall, match_endpoint
from extproc.endpoints.body import check_common, parse_body, read_model
from extproc.envoyapi.messages import (
    HttpHeaders,
    ProcessingRequest,
    ProcessingResponse,
    local_reply,
    pass_through,
    read_headers,
    replace_request,
)
from extproc.errors import INTERNAL_ERROR, BadRequest, GatewayError, Unauthenticated
from extproc.pipeline.auth import authenticate
from extproc.pipeline.routing import choose_target, resolve_route
from extproc.providers import TRANSLATORS

log = logging.getLogger(__name__)


class Exchange:
    """Per-request state for one stream; the gateway snapshot is fixed when the stream opens."""

    __slots__ = ("_call", "_gateway", "_principal", "_remove_headers", "_replied", "_rng")

    def __init__(self, gateway: Gateway, rng: random.Random) -> None:
        self._gateway = gateway
        self._rng = rng
        self._call: ModelCall | None = None
        self._principal: Principal | None = None
        self._remove_headers: list[str] = []
        self._replied = False

    def process(self, request: ProcessingRequest) -> ProcessingResponse:
        phase = request.WhichOneof("request")
        if phase is None:
            raise ValueError("ProcessingRequest carries no phase")
        if self._replied:
            return pass_through(phase)
        try:
            if phase == "request_headers":
                return self._on_request_headers(request.request_headers)
            if phase == "request_body":
                return self._on_request_body(request.request_body.body)
            return pass_through(phase)
        except GatewayError as error:
            return self._reply_error(error)
        except Exception:
            log.exception("unexpected failure while processing %s", phase)
            return self._reply_error(INTERNAL_ERROR)

    def _on_request_headers(self, message: HttpHeaders) -> ProcessingResponse:
        headers = read_headers(message)
        method = _single(headers, names.METHOD)
        path = _single(headers, names.PATH)
        endpoint = match_endpoint(method, path)
        principal = authenticate(headers, self._gateway.principals)
        if isinstance(endpoint, LocalAnswer):
            self._replied = True
            return local_reply(
                200, endpoint.answer(self._gateway, principal, path.partition("?")[0])
            )
        if message.end_of_stream:
            raise BadRequest("The request has no body; send a JSON object.")
        self._call = endpoint
        self._principal = principal
        self._remove_headers = [
            name
            for name in headers
            if name.startswith(names.INTERNAL_PREFIX) or name in names.CREDENTIAL_HEADERS
        ]
        return pass_through("request_headers")

    def _on_request_body(self, raw: bytes) -> ProcessingResponse:
        call, principal = self._call, self._principal
        if call is None or principal is None:
            raise RuntimeError("request body before request headers")
        body = parse_body(raw)
        check_common(body)
        alias = read_model(body)
        call.check(body)
        target = choose_target(resolve_route(self._gateway.models, principal, alias), self._rng)
        upstream = TRANSLATORS[target.provider.kind](call, target, body)
        payload = orjson.dumps(upstream.body)
        set_headers = [
            *upstream.headers,
            (names.ROUTE, target.provider.name),
            (names.PATH, upstream.path),
            (names.CONTENT_TYPE, "application/json"),
            (names.CONTENT_LENGTH, str(len(payload))),
        ]
        provided = {name for name, _ in set_headers}
        remove = [name for name in self._remove_headers if name not in provided]
        return replace_request(set_headers=set_headers, remove_headers=remove, body=payload)

    def _reply_error(self, error: GatewayError) -> ProcessingResponse:
        self._replied = True
        extra = [("www-authenticate", "Bearer")] if isinstance(error, Unauthenticated) else []
        return local_reply(error.status, error.to_body(), headers=extra)


def _single(headers: dict[str, list[str]], name: str) -> str:
    values = headers.get(name)
    if not values:
        raise BadRequest(f"The request has no {name} header.")
    return values[0]
