"""One HTTP request to an MCP server through the gateway (`/mcp/<name>`), over its ext_proc
stream: the caller must be granted the server; a `tools/call` of a tool it may not call (or a
prompt or resource its grant leaves out) is answered by the gateway, nothing reaching the
server; a tool call it may make is reserved in the ledger first (`tool_calls` and concurrency
limits) and refunded when it fails; the server's credential replaces the caller's; lists of
tools, prompts and resources, JSON or SSE, are cut to what the caller may use; a server that is
down is answered for, as a JSON-RPC error."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson

from extproc import headers as names
from extproc.config import Principal
from extproc.config.model import McpKind, McpServer
from extproc.envoyapi.messages import (
    Answer,
    Headers,
    ProcessingResponse,
    amend_response_headers,
    continue_and_read_response,
    local_reply,
    pass_through,
    relay_bodies,
    replace_request,
    replace_request_headers,
    replace_response_body,
)
from extproc.envoyapi.wire import Buffer
from extproc.pipeline.mcp import (
    PROTOCOL_VERSION,
    REFUSED,
    SERVER_UNAVAILABLE,
    McpRefusal,
    Post,
    error_message,
    errors_body,
    failed_calls,
    filtered_event,
    filtered_lists,
    read_post,
    to_server,
    tool_results,
    unknown,
)
from extproc.pipeline.refusals import refused, store_down
from extproc.quota.ledger import Ledger, Reservation, StorePolicy
from extproc.quota.limits import TOOL_PREFIX
from extproc.quota.standing import QuotaRefused, QuotaStoreDown
from extproc.sse import EVENT_STREAM, EventParser
from extproc.telemetry.record import RequestRecord
from extproc.usage import Usage

log = logging.getLogger(__name__)

JSON = "application/json"
CALLED = Usage(0, 0)
"""What a tool call that ran is settled with: it counts once, whatever it used."""


class McpCall:
    """Per-request state of a call to an MCP server."""

    __slots__ = (
        "_events",
        "_failed",
        "_headers",
        "_ledger",
        "_max_message",
        "_policy",
        "_post",
        "_principal",
        "_reading",
        "_record",
        "_recorded",
        "_reservations",
        "_server",
        "_unavailable",
    )

    def __init__(
        self,
        server: McpServer,
        principal: Principal,
        record: RequestRecord,
        *,
        ledger: Ledger,
        policy: StorePolicy,
        max_message: int,
        recorded: Callable[[str], str | None] | None = None,
    ) -> None:
        """`recorded`: what of a text the request's span may keep (content recording on:
        redacted), else None: tool arguments and results are not recorded."""
        self._server = server
        self._principal = principal
        self._record = record
        self._ledger = ledger
        self._policy = policy
        self._max_message = max_message
        self._headers: Headers = {}
        self._post: Post | None = None
        self._reading = False
        """The answer is read: it may hold a tool list to cut, or a tool call's outcome."""
        self._events: EventParser | None = None
        self._reservations: list[Reservation] = []
        self._failed = False
        """A tool call failed (its reservation is refunded)."""
        self._recorded = recorded
        self._unavailable: int | None = None
        """The status of an answer that is not the server's (it is down): answered for."""

    def on_request_headers(self, headers: Headers, *, has_body: bool) -> ProcessingResponse:
        record = self._record
        record.mcp_server = self._server.name
        if not self._principal.may_reach(self._server.name):
            name = self._server.name
            raise McpRefusal(403, REFUSED, f"This caller may not use MCP server {name!r}.")
        self._headers = headers
        if has_body:
            return continue_and_read_response()
        # A GET (the server's own messages) or DELETE (the session's end): on as it is.
        set_headers, remove = to_server(headers, self._server)
        return replace_request_headers(set_headers=set_headers, remove_headers=remove)

    async def on_request_body(self, raw: Buffer) -> Answer:
        body = bytes(raw)
        versions = self._headers.get(PROTOCOL_VERSION)
        post = read_post(body, versions[0] if versions else None)
        self._post = post
        record = self._record
        record.mcp_method = ",".join(call.method or "response" for call in post.calls)
        tools = [call.tool for call in post.tool_calls if call.tool]
        record.mcp_tool = ",".join(tools) or None
        if self._recorded is not None and post.tool_calls:
            arguments = [call.arguments for call in post.tool_calls]
            record.input_content = self._recorded(orjson.dumps(arguments).decode())
        refusals = {
            index: unknown(call)
            for index, call in enumerate(post.calls)
            if call.asks is not None and not self._allows(*call.asks)
        }
        if refusals:
            # It is not the caller's to know of: refused as a server refuses what it does not
            # have, and nothing reaches the server.
            record.status, record.error_type = 200, "tool_refused"
            return local_reply(200, errors_body(post, refusals))
        for index, call in enumerate(post.calls):
            if call.tool is not None and (answer := await self._reserve(post, index, call.tool)):
                return answer
        self._reading = post.lists or bool(post.tool_calls)
        set_headers, remove = to_server(self._headers, self._server)
        return replace_request(set_headers=set_headers, remove_headers=remove, body=body)

    async def _reserve(self, post: Post, index: int, tool: str) -> ProcessingResponse | None:
        """Reserve one tool call; the gateway's answer when a limit refuses it (None: on)."""
        try:
            reservation = await self._ledger.reserve(
                self._principal.limits,
                alias=f"{TOOL_PREFIX}{self._server.name}/{tool}",
                price=None,
                estimate=CALLED,
                policy=self._policy,
            )
        except QuotaRefused as refusal:
            error, status = refused(refusal), 200
        except QuotaStoreDown:
            error, status = store_down(), 503
        else:
            self._reservations.append(reservation)
            self._record.quota = reservation.decision
            return None
        await self.refund()
        call = post.calls[index]
        retry_after = dict(error.headers).get(names.RETRY_AFTER)
        data = {"retry_after": int(retry_after)} if retry_after else None
        answer = error_message(call.id, REFUSED, error.message, data)
        self._record.status, self._record.error_type = status, error.code or error.type
        if error.labels:
            self._record.note_refusal(error.labels, "refused")
        return local_reply(status, errors_body(post, {index: answer}), headers=error.headers)

    def on_response_headers(self, headers: Headers) -> Answer:
        status = int(headers[names.STATUS][0])
        self._record.status = status
        post = self._post
        if post is not None and status >= 500 and any(call.id is not None for call in post.calls):
            # The server is down, or failed without a JSON-RPC answer: the client gets one.
            self._unavailable, self._failed = status, True
            self._record.error_type = f"mcp_server_{status}"
            self._record.status = 200
            set_headers = [(names.STATUS, "200"), (names.CONTENT_TYPE, JSON)]
            return amend_response_headers(
                set_headers, remove_headers=[names.CONTENT_LENGTH], body="whole"
            )
        if status >= 400:
            self._failed = True
        content_type = (headers.get(names.CONTENT_TYPE) or [""])[0]
        if not self._reading or status != 200:
            return amend_response_headers([], body="skip")
        if content_type.startswith(EVENT_STREAM):
            self._events = EventParser(self._max_message)
            return amend_response_headers([], remove_headers=[names.CONTENT_LENGTH], body="relay")
        if content_type.startswith(JSON):
            return amend_response_headers([], remove_headers=[names.CONTENT_LENGTH], body="whole")
        return amend_response_headers([], body="skip")

    def on_response_body(self, chunk: bytes, *, end: bool) -> Answer:
        post = self._post
        if self._unavailable is not None and post is not None:
            if not end:
                return pass_through("response_body")
            message = f"MCP server {self._server.name!r} is unavailable ({self._unavailable})."
            errors = {
                index: error_message(call.id, SERVER_UNAVAILABLE, message)
                for index, call in enumerate(post.calls)
                if call.id is not None
            }
            return replace_response_body(errors_body(post, errors))
        if self._events is not None:
            blocks = self._events.feed(chunk, end=end)
            out = []
            for block in blocks:
                out.append(filtered_event(block, self._allows))
                if block.event is not None:
                    self._note_outcome(block.event.data.encode())
            return relay_bodies(b"".join(out), end=end, limit=self._max_message)
        if not end:
            return pass_through("response_body")
        answer = self._note_outcome(chunk)
        filtered = filtered_lists(answer, self._allows) if answer is not None else None
        if filtered is None:
            return pass_through("response_body")
        return replace_response_body(orjson.dumps(filtered))

    def _note_outcome(self, data: bytes) -> Any:
        """The JSON-RPC answer (parsed), noting whether a tool call in it failed."""
        try:
            answer = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        post = self._post
        if post is None:
            return answer
        if failed_calls(answer, post):
            self._failed = True
            self._record.error_type = self._record.error_type or "tool_failed"
        if self._recorded is not None and (results := tool_results(answer, post)):
            self._record.output_content = self._recorded(orjson.dumps(results).decode())
        return answer

    async def finish(self) -> None:
        """Settle the tool calls: counted once each when they ran, refunded when they
        failed (a stream cut before their answer counts: the server ran them)."""
        reservations, self._reservations = self._reservations, []
        for reservation in reservations:
            await reservation.settle(None if self._failed else CALLED)

    async def refund(self) -> None:
        reservations, self._reservations = self._reservations, []
        for reservation in reservations:
            await reservation.settle(None)

    def _allows(self, kind: McpKind, name: str) -> bool:
        return self._principal.may_reach(self._server.name, kind, name)
