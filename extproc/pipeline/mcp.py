"""MCP over the Streamable HTTP transport, as the gateway reads it: the JSON-RPC messages a
client posts (which tools it calls), JSON-RPC errors in the shape MCP clients expect, tool
lists cut to what the caller may call, and the headers an MCP server gets.

No Envoy types here: the exchange turns these values into ext_proc answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from extproc import headers as names
from extproc.config.model import McpKind, McpServer
from extproc.pipeline.upstream_headers import removed
from extproc.sse import Block

PROTOCOL_VERSION = "mcp-protocol-version"
SESSION_ID = "mcp-session-id"
LAST_EVENT_ID = "last-event-id"
BATCHES_REMOVED = "2025-06-18"
"""The first protocol version without JSON-RPC batches."""
KEPT_HEADERS = frozenset(
    {
        names.CONTENT_TYPE,
        "accept",
        PROTOCOL_VERSION,
        SESSION_ID,
        LAST_EVENT_ID,
    }
)
"""What an MCP server gets of the client's headers: the transport's own."""

NAMED: dict[str, tuple[McpKind, str]] = {
    "tools/call": ("tools", "name"),
    "prompts/get": ("prompts", "name"),
    "resources/read": ("resources", "uri"),
    "resources/subscribe": ("resources", "uri"),
}
"""The methods that use one thing of a server by name (or URI): its kind, and the field."""
LISTED: tuple[tuple[str, McpKind, str], ...] = (
    ("tools", "tools", "name"),
    ("prompts", "prompts", "name"),
    ("resources", "resources", "uri"),
    ("resourceTemplates", "resources", "uriTemplate"),
)
"""The lists answers hold: their field, what kind of thing they list, and its name's field."""
LIST_METHODS = frozenset(
    {"tools/list", "prompts/list", "resources/list", "resources/templates/list"}
)

# JSON-RPC error codes.
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
RESOURCE_NOT_FOUND = -32002
PARSE_ERROR = -32700
SERVER_UNAVAILABLE = -32603
REFUSED = -32001
"""The gateway refused the call (the caller may not use the server, or a limit)."""


class McpRefusal(Exception):
    """A JSON-RPC error for the whole post, answered by the gateway with `status`."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> bytes:
        return orjson.dumps(error_message(None, self.code, self.message))


@dataclass(frozen=True, slots=True)
class Call:
    """One JSON-RPC message of a post."""

    id: Any
    """Its id; None for a notification (or a response the client sends back)."""
    method: str | None
    tool: str | None = None
    """The tool a `tools/call` names."""
    arguments: Any = None
    """The arguments it passes (recorded only when content recording is on)."""
    asks: tuple[McpKind, str] | None = None
    """What of the server it uses by name: a tool, a prompt (`prompts/get`) or a resource
    (`resources/read`, `resources/subscribe`, by URI)."""


@dataclass(frozen=True, slots=True)
class Post:
    calls: tuple[Call, ...]
    batch: bool

    @property
    def lists(self) -> bool:
        """It asks for a list to cut (tools, prompts, resources)."""
        return any(call.method in LIST_METHODS for call in self.calls)

    @property
    def tool_calls(self) -> tuple[Call, ...]:
        return tuple(call for call in self.calls if call.method == "tools/call")


def read_post(body: bytes, protocol_version: str | None) -> Post:
    """The JSON-RPC messages of a POST body. Raises McpRefusal for what is not JSON-RPC, and
    for a batch under a protocol version that removed them."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise McpRefusal(400, PARSE_ERROR, "The body is not valid JSON.") from None
    batch = isinstance(parsed, list)
    messages = parsed if batch else [parsed]
    if batch and (not messages or (protocol_version or BATCHES_REMOVED) >= BATCHES_REMOVED):
        raise McpRefusal(
            400,
            INVALID_REQUEST,
            f"JSON-RPC batches are not part of MCP {protocol_version or BATCHES_REMOVED}; "
            "send one message per request.",
        )
    return Post(tuple(_call(message) for message in messages), batch)


def _call(message: Any) -> Call:
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        raise McpRefusal(400, INVALID_REQUEST, "Each message must be a JSON-RPC 2.0 object.")
    method = message.get("method")
    if method is not None and not isinstance(method, str):
        raise McpRefusal(400, INVALID_REQUEST, "A message's method must be a string.")
    named = NAMED.get(method or "")
    if named is None:
        return Call(message.get("id"), method)
    kind, field = named
    params = message.get("params")
    name = params.get(field) if isinstance(params, dict) else None
    if not isinstance(name, str):
        raise McpRefusal(400, INVALID_PARAMS, f"{method} needs params.{field}, a string.")
    assert isinstance(params, dict)
    if kind == "tools":
        return Call(message.get("id"), method, name, params.get("arguments"), (kind, name))
    return Call(message.get("id"), method, asks=(kind, name))


def unknown(call: Call) -> dict[str, Any]:
    """The error a server gives for what it does not have: what the gateway answers for what
    the caller may not use (so it learns nothing of it)."""
    assert call.asks is not None
    kind, name = call.asks
    if kind == "resources":
        return error_message(call.id, RESOURCE_NOT_FOUND, f"Resource not found: {name}")
    return error_message(call.id, INVALID_PARAMS, f"Unknown {kind[:-1]}: {name}")


def error_message(call_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": call_id, "error": error}


def errors_body(post: Post, answers: dict[int, dict[str, Any]]) -> bytes:
    """The answer to a post the gateway answers itself: one message, or a batch's, where
    every other request of the batch is answered as not sent (none went to the server)."""
    if not post.batch:
        return orjson.dumps(next(iter(answers.values())))
    unsent = "Not sent: another message of the batch was refused."
    messages = [
        answers.get(index) or error_message(call.id, REFUSED, unsent)
        for index, call in enumerate(post.calls)
        if index in answers or call.id is not None
    ]
    return orjson.dumps(messages)


def to_server(present: Iterable[str], server: McpServer) -> tuple[list[tuple[str, str]], list[str]]:
    """The headers to set on a request to `server` (its route, path, credential and fixed
    headers) and the client's to remove (everything but the transport's own: never the
    caller's key)."""
    set_headers = [
        (names.ROUTE, server.route),
        (names.PATH, server.path),
        *server.headers,
    ]
    if server.credential is not None:
        set_headers.append((names.AUTHORIZATION, f"Bearer {server.credential.reveal()}"))
    return set_headers, removed(present, KEPT_HEADERS, set_headers)


def filtered_lists(answer: Any, allows: Callable[[McpKind, str], bool]) -> Any | None:
    """A JSON-RPC answer (or batch of them) with the tools, prompts and resources it lists
    cut to those the caller may use; None when nothing was cut."""
    messages = answer if isinstance(answer, list) else [answer]
    changed = False
    for message in messages:
        result = message.get("result") if isinstance(message, dict) else None
        if not isinstance(result, dict):
            continue
        for field, kind, key in LISTED:
            listed = result.get(field)
            if not isinstance(listed, list):
                continue
            kept = [item for item in listed if _allowed(item, kind, key, allows)]
            if len(kept) != len(listed):
                result[field] = kept
                changed = True
    return answer if changed else None


def failed_calls(answer: Any, post: Post) -> bool:
    """Whether a JSON-RPC answer (or batch) tells that a `tools/call` of `post` failed: a
    JSON-RPC error, or a result flagged `isError`."""
    ids = {call.id for call in post.tool_calls if call.id is not None}
    messages = answer if isinstance(answer, list) else [answer]
    for message in messages:
        if not isinstance(message, dict) or message.get("id") not in ids:
            continue
        result = message.get("result")
        if "error" in message or (isinstance(result, dict) and result.get("isError") is True):
            return True
    return False


def tool_results(answer: Any, post: Post) -> list[Any]:
    """The results (or errors) a JSON-RPC answer gives to the `tools/call`s of `post`."""
    ids = {call.id for call in post.tool_calls if call.id is not None}
    messages = answer if isinstance(answer, list) else [answer]
    return [
        message.get("result", message.get("error"))
        for message in messages
        if isinstance(message, dict) and message.get("id") in ids
    ]


def _allowed(item: Any, kind: McpKind, key: str, allows: Callable[[McpKind, str], bool]) -> bool:
    name = item.get(key) if isinstance(item, dict) else None
    return isinstance(name, str) and allows(kind, name)


def filtered_event(block: Block, allows: Callable[[McpKind, str], bool]) -> bytes:
    """One event of a server's SSE answer, with any list in it cut (else as it came)."""
    if block.event is None:
        return block.raw
    try:
        data = orjson.loads(block.event.data)
    except orjson.JSONDecodeError:
        return block.raw
    filtered = filtered_lists(data, allows)
    if filtered is None:
        return block.raw
    lines = [
        line for line in block.raw.decode().splitlines() if line and not line.startswith("data:")
    ]
    lines.append("data: " + orjson.dumps(filtered).decode())
    return ("\n".join(lines) + "\n\n").encode()
