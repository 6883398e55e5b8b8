"""Pieces every translator uses: refusing what cannot be carried, reading JSON arguments,
data URLs, merging turns, and generated ids."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from typing import Any, cast

import orjson

from extproc.errors import ApiError, BadRequest, shorten
from extproc.translators.ir import (
    REASONING_EFFORTS,
    Image,
    JsonObject,
    Message,
    Part,
    ReasoningEffort,
    Role,
    ToolCall,
    ToolResult,
)

_DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+)(?:;[^,;]*)*;base64,(?P<data>.*)$", re.S)


def untranslatable(param: str, provider: str, detail: str = "") -> BadRequest:
    """The refusal of a field whose meaning cannot be carried to the model's provider."""
    reason = f" ({detail})" if detail else ""
    return BadRequest(
        f"'{param}' cannot be sent to this model: its provider ({provider}) has no "
        f"equivalent{reason}.",
        param=param,
        code="unsupported_parameter",
    )


def invalid(param: str, what: str) -> BadRequest:
    return BadRequest(f"'{param}' {what}.", param=param)


def expect(value: Any, kinds: type | tuple[type, ...], param: str, what: str) -> Any:
    """`value` when it is of the JSON kinds given (booleans are never numbers), else 400."""
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in _tuple(kinds)):
        raise invalid(param, f"must be {what}")
    return value


def _tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def optional_number(body: Mapping[str, Any], name: str) -> float | None:
    value = body.get(name)
    return None if value is None else cast(float, expect(value, (int, float), name, "a number"))


def optional_int(body: Mapping[str, Any], name: str, param: str | None = None) -> int | None:
    value = body.get(name)
    return None if value is None else cast(int, expect(value, int, param or name, "an integer"))


def optional_str(body: Mapping[str, Any], name: str, param: str | None = None) -> str | None:
    value = body.get(name)
    return None if value is None else cast(str, expect(value, str, param or name, "a string"))


def optional_effort(value: Any, param: str) -> ReasoningEffort | None:
    """A reasoning effort in OpenAI's words."""
    if value is None:
        return None
    if value not in REASONING_EFFORTS:
        raise invalid(param, f"must be one of {', '.join(REASONING_EFFORTS)}")
    return cast(ReasoningEffort, value)


def optional_bool(body: Mapping[str, Any], name: str) -> bool | None:
    value = body.get(name)
    return None if value is None else cast(bool, expect(value, bool, name, "a boolean"))


def as_object(value: Any) -> JsonObject:
    """A JSON member read leniently (from a provider's answer): an object, else empty."""
    return value if isinstance(value, dict) else {}


def token_count(values: Any, name: str) -> int:
    """A token count from a provider's usage object: 0 when absent or not a count."""
    value = values.get(name) if isinstance(values, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def parse_arguments(text: Any, param: str) -> JsonObject:
    """Tool call arguments given as JSON text: they must be a JSON object."""
    expect(text, str, param, "a string of JSON")
    try:
        arguments = orjson.loads(text) if text.strip() else {}
    except orjson.JSONDecodeError:
        raise invalid(param, "must be a JSON object (it is not valid JSON)") from None
    if not isinstance(arguments, dict):
        raise invalid(param, "must be a JSON object")
    return arguments


def arguments_text(arguments: JsonObject) -> str:
    return orjson.dumps(arguments).decode()


def image_from_url(url: Any, param: str) -> Image:
    """An image given by URL: a base64 data URL carries it by value."""
    expect(url, str, param, "a URL string")
    match = _DATA_URL.match(url)
    if match:
        return Image(media_type=match["type"], data=match["data"])
    if url.startswith(("http://", "https://")):
        return Image(url=url)
    raise invalid(param, "must be an http(s) URL or a base64 data URL")


def data_url(image: Image) -> str:
    if image.url is not None:
        return image.url
    return f"data:{image.media_type};base64,{image.data}"


def merge_turns(messages: Iterable[tuple[Role, list[Part]]]) -> tuple[Message, ...]:
    """Consecutive turns of one role become one message (every schema allows that meaning;
    some require it); empty turns disappear."""
    merged: list[tuple[Role, list[Part]]] = []
    for role, parts in messages:
        if not parts:
            continue
        if merged and merged[-1][0] == role:
            merged[-1][1].extend(parts)
        else:
            merged.append((role, list(parts)))
    return tuple(Message(role, tuple(parts)) for role, parts in merged)


class CallNames:
    """The tool name of each call id seen so far in a conversation: tool results carry only
    the id, and some schemas answer a call by its name."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}

    def note(self, call: ToolCall) -> None:
        self._names[call.id] = call.name

    def result(
        self, call_id: Any, content: tuple[Any, ...], is_error: bool, param: str
    ) -> ToolResult:
        expect(call_id, str, param, "a string")
        name = self._names.get(call_id)
        if name is None:
            raise invalid(param, f"names the tool call {call_id!r}, which no earlier message made")
        return ToolResult(call_id, name, content, is_error)


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


_ERROR_TYPES = {
    400: "invalid_request_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_exceeded",
}


def error_type_for(status: int) -> str:
    """The OpenAI error type that fits a status when the provider gave none."""
    return _ERROR_TYPES.get(status, "server_error" if status >= 500 else "upstream_error")


def text_error(status: int, body: bytes) -> ApiError:
    """An error answered as text (or HTML, or JSON of an unknown shape)."""
    text = body.decode("utf-8", "replace").strip()
    message = f"The provider answered {status}" + (f": {shorten(text)}" if text else ".")
    return ApiError(status, message, error_type_for(status))


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
