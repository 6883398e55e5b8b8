"""One HTTP request to an MCP server through the gateway (`/mcp/<name>`), over its ext_proc
stream: the caller must be granted the server; a `tools/call` of a tool it may not call is
answered by the gateway (nothing reaches the server); the server's credential replaces the
caller's; `tools/list` answers, JSON or SSE, are cut to the tools the caller may call."""

from __future__ import annotations

import logging
from typing import Any

import orjson

from extproc import headers as names
from extproc.config import Principal
from extproc.config.model import McpServer
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
    INVALID_PARAMS,
    PROTOCOL_VERSION,
    REFUSED,
    McpRefusal,
    Post,
    error_message,
    errors_body,
    filtered_event,
    filtered_tools,
    read_post,
    to_server,
)
from extproc.sse import EVENT_STREAM, EventParser
from extproc.telemetry.record import RequestRecord

log = logging.getLogger(__name__)

JSON = "application/json"


class McpCall:
    """Per-request state of a call to an MCP server."""

    __slots__ = (
        "_events",
        "_filtering",
        "_headers",
        "_max_message",
        "_post",
        "_principal",
        "_record",
        "_server",
    )

    def __init__(
        self, server: McpServer, principal: Principal, record: RequestRecord, max_message: int
    ) -> None:
        self._server = server
        self._principal = principal
        self._record = record
        self._max_message = max_message
        self._headers: Headers = {}
        self._post: Post | None = None
        self._filtering = False
        """The answer may hold a tool list to cut."""
        self._events: EventParser | None = None

    def on_request_headers(self, headers: Headers, *, has_body: bool) -> ProcessingResponse:
        if not self._principal.may_reach(self._server.name):
            raise McpRefusal(
                403, REFUSED, f"This caller may not use MCP server {self._server.name!r}."
            )
        self._headers = headers
        self._record.provider = self._server.name
        if has_body:
            return continue_and_read_response()
        # A GET (the server's own messages) or DELETE (the session's end): on as it is.
        set_headers, remove = to_server(headers, self._server)
        return replace_request_headers(set_headers=set_headers, remove_headers=remove)

    def on_request_body(self, raw: Buffer) -> Answer:
        body = bytes(raw)
        versions = self._headers.get(PROTOCOL_VERSION)
        version = versions[0] if versions else None
        post = read_post(body, version)
        self._post = post
        self._record.operation = "mcp"
        methods = sorted({call.method for call in post.calls if call.method})
        self._record.alias = ",".join(methods) or None
        refused = {
            index: error_message(call.id, INVALID_PARAMS, f"Unknown tool: {call.tool}")
            for index, call in enumerate(post.calls)
            if call.method == "tools/call"
            and call.tool is not None
            and not self._principal.may_reach(self._server.name, call.tool)
        }
        if refused:
            # The tool is not the caller's to know of: refused as a server refuses a tool it
            # does not have, and nothing reaches the server.
            self._record.status, self._record.error_type = 200, "tool_refused"
            return local_reply(200, errors_body(post, refused))
        self._filtering = post.lists_tools
        set_headers, remove = to_server(self._headers, self._server)
        return replace_request(set_headers=set_headers, remove_headers=remove, body=body)

    def on_response_headers(self, headers: Headers) -> Answer:
        status = int(headers[names.STATUS][0])
        self._record.status = status
        content_type = (headers.get(names.CONTENT_TYPE) or [""])[0]
        if not self._filtering or status != 200:
            return amend_response_headers([], body="skip")
        if content_type.startswith(EVENT_STREAM):
            self._events = EventParser(self._max_message)
            return amend_response_headers([], remove_headers=[names.CONTENT_LENGTH], body="relay")
        if content_type.startswith(JSON):
            return amend_response_headers([], remove_headers=[names.CONTENT_LENGTH], body="whole")
        return amend_response_headers([], body="skip")

    def on_response_body(self, chunk: bytes, *, end: bool) -> Answer:
        may_call = self._may_call
        if self._events is not None:
            blocks = self._events.feed(chunk, end=end)
            out = b"".join(filtered_event(block, may_call) for block in blocks)
            return relay_bodies(out, end=end, limit=self._max_message)
        if not end:
            return pass_through("response_body")
        try:
            answer: Any = orjson.loads(chunk)
        except orjson.JSONDecodeError:
            return pass_through("response_body")
        filtered = filtered_tools(answer, may_call)
        if filtered is None:
            return pass_through("response_body")
        return replace_response_body(orjson.dumps(filtered))

    def _may_call(self, tool: str) -> bool:
        return self._principal.may_reach(self._server.name, tool)
