"""Anthropic Messages requests ⇄ the neutral form, and the quota's view of a Messages body."""

from __future__ import annotations

from typing import Any

from extproc.translators.common import (
    CallNames,
    expect,
    invalid,
    merge_turns,
    optional_int,
    optional_number,
    optional_str,
    untranslatable,
)
from extproc.translators.ir import (
    ChatRequest,
    Image,
    JsonObject,
    Message,
    Part,
    Role,
    Text,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
)
from extproc.translators.schema import Operation

INPUT_FIELDS: dict[Operation, tuple[str, ...]] = {"chat": ("system", "messages", "tools")}

_HANDLED = frozenset(
    {
        "model", "messages", "system", "max_tokens", "temperature", "top_p", "top_k",
        "stop_sequences", "stream", "tools", "tool_choice", "metadata",
    }
)  # fmt: skip
_DEFAULTS: dict[str, tuple[Any, ...]] = {
    "service_tier": ("auto", "standard_only"),
    "thinking": ({"type": "disabled"},),
}
"""Fields accepted at these values only (others change the answer)."""
_WITHOUT_MEANING = ("thinking", "redacted_thinking")
"""Assistant blocks of earlier turns that only the model that wrote them can read; other
providers get the turn without them."""


# Client side: an Anthropic client's Messages request → neutral.


def parse_chat(body: JsonObject, provider: str) -> ChatRequest:
    for name, value in body.items():
        if name in _HANDLED or value is None:
            continue
        if value not in _DEFAULTS.get(name, ()):
            raise untranslatable(name, provider)
    metadata = body.get("metadata") or {}
    expect(metadata, dict, "metadata", "an object")
    for name in metadata:
        if name != "user_id":
            raise untranslatable(f"metadata.{name}", provider)
    tools = body.get("tools") or ()
    choice, parallel = _parse_tool_choice(body.get("tool_choice"))
    return ChatRequest(
        messages=_parse_messages(body["messages"], provider),
        system=_parse_system(body.get("system")),
        max_tokens=optional_int(body, "max_tokens"),
        temperature=optional_number(body, "temperature"),
        top_p=optional_number(body, "top_p"),
        top_k=optional_int(body, "top_k"),
        stop=tuple(
            expect(item, str, "stop_sequences", "an array of strings")
            for item in expect(body.get("stop_sequences") or [], list, "stop_sequences", "an array")
        ),
        tools=tuple(_parse_tool(tool, f"tools.{i}", provider) for i, tool in enumerate(tools)),
        tool_choice=choice,
        parallel_tool_calls=parallel,
        user=optional_str(metadata, "user_id", "metadata.user_id"),
        stream=body.get("stream") is True,
        stream_usage=True,
        param_names={"stop": "stop_sequences", "user": "metadata.user_id"},
    )


def _parse_system(system: Any) -> tuple[str, ...]:
    if system is None or system == "":
        return ()
    if isinstance(system, str):
        return (system,)
    expect(system, list, "system", "a string or an array of text blocks")
    texts = []
    for index, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise invalid(f"system.{index}", "must be a text block")
        texts.append(expect(block.get("text"), str, f"system.{index}.text", "a string"))
    return tuple(texts)


def _parse_messages(messages: list[JsonObject], provider: str) -> tuple[Message, ...]:
    turns: list[tuple[Role, list[Part]]] = []
    calls = CallNames()
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise invalid(f"{where}.role", "must be user or assistant")
        content = message.get("content")
        if isinstance(content, str):
            turns.append((role, [Text(content)] if content else []))
            continue
        blocks = expect(content, list, f"{where}.content", "a string or an array of blocks")
        parts = [
            part
            for position, block in enumerate(blocks)
            if (part := _parse_block(block, f"{where}.content.{position}", calls, provider))
        ]
        turns.append((role, parts))
    return merge_turns(turns)


def _parse_block(block: Any, param: str, calls: CallNames, provider: str) -> Part | None:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "text":
        return Text(expect(block.get("text"), str, f"{param}.text", "a string"))
    if kind == "image":
        return _parse_image(block.get("source"), f"{param}.source", provider)
    if kind == "tool_use":
        call = ToolCall(
            id=expect(block.get("id"), str, f"{param}.id", "a string"),
            name=expect(block.get("name"), str, f"{param}.name", "a string"),
            arguments=expect(block.get("input", {}), dict, f"{param}.input", "an object"),
        )
        calls.note(call)
        return call
    if kind == "tool_result":
        content = block.get("content")
        if content is None or isinstance(content, str):
            parts: tuple[Text | Image, ...] = (Text(content),) if content else ()
        else:
            expect(content, list, f"{param}.content", "a string or an array of blocks")
            parts = tuple(
                _parse_result_block(item, f"{param}.content.{i}", provider)
                for i, item in enumerate(content)
            )
        is_error = block.get("is_error") is True
        return calls.result(block.get("tool_use_id"), parts, is_error, f"{param}.tool_use_id")
    if kind in _WITHOUT_MEANING:
        return None
    raise untranslatable(param, provider, f"content block {kind!r}")


def _parse_result_block(block: Any, param: str, provider: str) -> Text | Image:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "text":
        return Text(expect(block.get("text"), str, f"{param}.text", "a string"))
    if kind == "image":
        return _parse_image(block.get("source"), f"{param}.source", provider)
    raise untranslatable(param, provider, f"tool result block {kind!r}")


def _parse_image(source: Any, param: str, provider: str) -> Image:
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64":
        return Image(
            media_type=expect(source.get("media_type"), str, f"{param}.media_type", "a string"),
            data=expect(source.get("data"), str, f"{param}.data", "a string"),
        )
    if kind == "url":
        return Image(url=expect(source.get("url"), str, f"{param}.url", "a string"))
    raise untranslatable(param, provider, f"image source {kind!r}")


def _parse_tool(tool: Any, param: str, provider: str) -> Tool:
    expect(tool, dict, param, "an object")
    if tool.get("type", "custom") != "custom":
        raise untranslatable(param, provider, f"server tool {tool.get('type')!r}")
    return Tool(
        name=expect(tool.get("name"), str, f"{param}.name", "a string"),
        description=optional_str(tool, "description", f"{param}.description"),
        parameters=expect(tool.get("input_schema"), dict, f"{param}.input_schema", "an object"),
    )


def _parse_tool_choice(choice: Any) -> tuple[ToolChoice | None, bool | None]:
    if choice is None:
        return None, None
    kind = choice.get("type") if isinstance(choice, dict) else None
    modes = {"auto": "auto", "any": "required", "none": "none", "tool": "tool"}
    if kind not in modes:
        raise invalid("tool_choice", "must have type auto, any, tool or none")
    name = optional_str(choice, "name", "tool_choice.name")
    if kind == "tool" and name is None:
        raise invalid("tool_choice.name", "is required when type is tool")
    disable = choice.get("disable_parallel_tool_use")
    return ToolChoice(modes[kind], name), (None if disable is None else not disable)  # type: ignore[arg-type]


# Provider side: neutral → an Anthropic Messages request.


def build_chat(request: ChatRequest, default_max_tokens: int) -> JsonObject:
    """The Messages body (without `model`). Anthropic requires `max_tokens`: the request's,
    else the cap quotas use for this model."""
    for name in ("seed", "presence_penalty", "frequency_penalty", "output_format"):
        if getattr(request, name) is not None:
            raise untranslatable(request.param(name), "anthropic")
    if request.reasoning_effort is not None:
        # Thinking would have to be sent back, signed, with every later tool result: only
        # Anthropic's own clients keep those signatures.
        raise untranslatable(request.param("reasoning_effort"), "anthropic", "thinking")
    body: JsonObject = {
        "max_tokens": request.max_tokens or default_max_tokens,
        "messages": [_build_message(message) for message in request.messages],
    }
    if request.system:
        body["system"] = (
            request.system[0]
            if len(request.system) == 1
            else [{"type": "text", "text": text} for text in request.system]
        )
    fields = {"temperature": request.temperature, "top_p": request.top_p, "top_k": request.top_k}
    body.update((name, value) for name, value in fields.items() if value is not None)
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if request.tools:
        body["tools"] = [
            {"name": tool.name, "input_schema": tool.parameters}
            | ({"description": tool.description} if tool.description is not None else {})
            for tool in request.tools
        ]
    choice = _build_tool_choice(request.tool_choice, request.parallel_tool_calls)
    if choice is not None:
        body["tool_choice"] = choice
    if request.user is not None:
        body["metadata"] = {"user_id": request.user}
    if request.stream:
        body["stream"] = True
    return body


def _build_message(message: Message) -> JsonObject:
    # Anthropic wants a user turn's tool results before anything else in it.
    results = [part for part in message.parts if isinstance(part, ToolResult)]
    others = [part for part in message.parts if not isinstance(part, ToolResult)]
    blocks = [_build_result(result) for result in results]
    blocks += [block for part in others if (block := _build_block(part))]
    return {"role": message.role, "content": blocks}


def _build_block(part: Part) -> JsonObject | None:
    if isinstance(part, Text):
        return {"type": "text", "text": part.text} if part.text else None  # no empty blocks
    if isinstance(part, Image):
        return {"type": "image", "source": _build_source(part)}
    if isinstance(part, ToolCall):
        return {"type": "tool_use", "id": part.id, "name": part.name, "input": part.arguments}
    return None


def _build_source(image: Image) -> JsonObject:
    if image.url is not None:
        return {"type": "url", "url": image.url}
    return {"type": "base64", "media_type": image.media_type, "data": image.data}


def _build_result(result: ToolResult) -> JsonObject:
    built: JsonObject = {
        "type": "tool_result",
        "tool_use_id": result.call_id,
        "content": [block for part in result.content if (block := _build_block(part))],
    }
    if result.is_error:
        built["is_error"] = True
    return built


def _build_tool_choice(choice: ToolChoice | None, parallel: bool | None) -> JsonObject | None:
    if choice is None and parallel is not False:
        return None
    modes = {"auto": "auto", "required": "any", "none": "none", "tool": "tool"}
    built: JsonObject = {"type": modes[choice.mode] if choice else "auto"}
    if choice is not None and choice.name is not None:
        built["name"] = choice.name
    if parallel is False and built["type"] != "none":
        built["disable_parallel_tool_use"] = True
    return built


# The quota's view of a Messages body.


def output_cap(operation: Operation, body: JsonObject) -> int | None:
    cap = body.get("max_tokens")
    return cap if isinstance(cap, int) else None


def with_output_cap(operation: Operation, body: JsonObject, cap: int) -> JsonObject:
    return body | {"max_tokens": max(1, cap)}
