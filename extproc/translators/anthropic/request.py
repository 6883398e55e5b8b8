"""Anthropic Messages requests ⇄ the neutral form, and the quota's view of a Messages body."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from extproc.translators.anthropic.context_edits import apply_context_edits
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
    OutputFormat,
    Part,
    ReasoningEffort,
    Role,
    Text,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
)
from extproc.translators.reasoning import is_gateway_signature, read_signature
from extproc.translators.schema import Operation

INPUT_FIELDS: dict[Operation, tuple[str, ...]] = {"chat": ("system", "messages", "tools")}

_HANDLED = frozenset(
    {
        "model", "messages", "system", "max_tokens", "temperature", "top_p", "top_k",
        "stop_sequences", "stream", "tools", "tool_choice", "metadata", "thinking",
        "output_config", "context_management",
    }
)  # fmt: skip
_DEFAULTS: dict[str, tuple[Any, ...]] = {"service_tier": ("auto", "standard_only")}
"""Fields accepted at these values only (others change the answer)."""
_EFFORTS: dict[str, ReasoningEffort] = {
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "xhigh",
    "max": "xhigh",
}
"""Anthropic's efforts in OpenAI's words (`max` is beyond OpenAI's most)."""
_THINKING_DEFAULT_EFFORT: ReasoningEffort = "high"
"""The effort Anthropic's adaptive thinking assumes when the client names none."""


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
    choice, parallel = _parse_tool_choice(body.get("tool_choice"))
    conversation = _Conversation(provider)
    conversation.declare(body.get("tools") or [])
    messages = conversation.parse(expect(body["messages"], list, "messages", "an array"))
    output = _parse_output_config(body.get("output_config"), provider)
    # A system message's effort holds for the turn it is in: the latest one wins.
    thinking = _parse_thinking(body.get("thinking"), conversation.effort or output.effort)
    request = ChatRequest(
        messages=messages,
        system=_parse_system(body.get("system")) + tuple(conversation.system),
        max_tokens=optional_int(body, "max_tokens"),
        temperature=optional_number(body, "temperature"),
        top_p=optional_number(body, "top_p"),
        top_k=optional_int(body, "top_k"),
        stop=tuple(
            expect(item, str, "stop_sequences", "an array of strings")
            for item in expect(body.get("stop_sequences") or [], list, "stop_sequences", "an array")
        ),
        tools=conversation.offered_tools(),
        tool_choice=choice,
        parallel_tool_calls=parallel,
        output_format=output.format,
        user=optional_str(metadata, "user_id", "metadata.user_id"),
        reasoning_effort=thinking.effort,
        reasoning_budget=thinking.budget,
        reasoning_shown=thinking.shown,
        stream=body.get("stream") is True,
        stream_usage=True,
        param_names={
            "stop": "stop_sequences",
            "user": "metadata.user_id",
            "reasoning_effort": "thinking",
            "output_format": "output_config.format",
        },
    )
    return apply_context_edits(request, body.get("context_management"), provider)


@dataclass(frozen=True, slots=True)
class _Thinking:
    effort: ReasoningEffort | None = None
    budget: int | None = None
    shown: bool = False


def _parse_thinking(thinking: Any, effort: ReasoningEffort | None) -> _Thinking:
    """`enabled` with a budget, `adaptive` (the model decides, at the client's effort) or
    `between_tools`; `display: omitted` asks for no thinking text back."""
    if thinking is None:
        return _Thinking(effort)
    kind = expect(thinking, dict, "thinking", "an object").get("type")
    if kind == "disabled":
        return _Thinking()
    if kind not in ("enabled", "adaptive", "between_tools"):
        raise invalid("thinking.type", "must be enabled, adaptive, between_tools or disabled")
    shown = thinking.get("display") != "omitted"
    if kind == "enabled":
        budget = expect(thinking.get("budget_tokens"), int, "thinking.budget_tokens", "an integer")
        return _Thinking(effort, budget, shown)
    return _Thinking(effort or _THINKING_DEFAULT_EFFORT, None, shown)


@dataclass(frozen=True, slots=True)
class _OutputConfig:
    effort: ReasoningEffort | None = None
    format: OutputFormat | None = None


def _parse_output_config(config: Any, provider: str) -> _OutputConfig:
    if config is None:
        return _OutputConfig()
    expect(config, dict, "output_config", "an object")
    for name, value in config.items():
        if name not in ("effort", "format") and value is not None:
            raise untranslatable(f"output_config.{name}", provider)
    output_format = None
    if (schema_format := config.get("format")) is not None:
        expect(schema_format, dict, "output_config.format", "an object")
        if schema_format.get("type") != "json_schema":
            raise invalid("output_config.format.type", "must be json_schema")
        schema = expect(
            schema_format.get("schema"), dict, "output_config.format.schema", "an object"
        )
        output_format = OutputFormat("json_schema", schema)
    return _OutputConfig(_parse_effort(config.get("effort"), "output_config.effort"), output_format)


def _parse_effort(value: Any, param: str) -> ReasoningEffort | None:
    if value is None:
        return None
    if value not in _EFFORTS:
        raise invalid(param, f"must be one of {', '.join(_EFFORTS)}")
    return _EFFORTS[value]


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


class _Conversation:
    """Reads the messages: their turns, the instructions of `system` messages among them
    (which join the system prompt), and which tools are offered at the end — declared ones
    unless deferred, those a `tool_addition` or a tool search's `tool_reference` brought in,
    less those a `tool_removal` withdrew (other schemas have one list of tools a request)."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.system: list[str] = []
        self.effort: ReasoningEffort | None = None
        """The effort of the last `system` message that set one."""
        self._tools: dict[str, Tool] = {}
        self._offered: dict[str, bool] = {}
        self._calls = CallNames()

    def declare(self, tools: Any) -> None:
        for index, tool in enumerate(expect(tools, list, "tools", "an array")):
            parsed, deferred = self._parse_tool(tool, f"tools.{index}")
            self._tools[parsed.name] = parsed
            self._offered[parsed.name] = not deferred

    def offered_tools(self) -> tuple[Tool, ...]:
        return tuple(tool for name, tool in self._tools.items() if self._offered[name])

    def parse(self, messages: list[Any]) -> tuple[Message, ...]:
        turns: list[tuple[Role, list[Part]]] = []
        later_user = [False] * len(messages)
        seen_user = False
        for index in range(len(messages) - 1, -1, -1):
            later_user[index] = seen_user
            seen_user = seen_user or _role(messages[index]) == "user"
        for index, message in enumerate(messages):
            where = f"messages.{index}"
            role = _role(message)
            if role == "system":
                self._system_message(message, where, shown=not later_user[index])
                continue
            if role not in ("user", "assistant"):
                raise invalid(f"{where}.role", "must be user, assistant or system")
            content = message.get("content")
            if isinstance(content, str):
                turns.append((role, [Text(content)] if content else []))
                continue
            blocks = expect(content, list, f"{where}.content", "a string or an array of blocks")
            parts = [
                part
                for position, block in enumerate(blocks)
                if (part := self._parse_block(block, f"{where}.content.{position}"))
            ]
            turns.append((role, parts))
        return merge_turns(turns)

    def _system_message(self, message: JsonObject, where: str, *, shown: bool) -> None:
        """Instructions amid the conversation; `clear_at: next_user_message` ones only until
        a later user message. Tool changes apply wherever they stand."""
        content = message.get("content")
        blocks: list[Any] = (
            [{"type": "text", "text": content}]
            if isinstance(content, str)
            else expect(content, list, f"{where}.content", "a string or an array of blocks")
        )
        keep = shown or message.get("clear_at") in (None, "never")
        for position, block in enumerate(blocks):
            param = f"{where}.content.{position}"
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text":
                text = expect(block.get("text"), str, f"{param}.text", "a string")
                if keep and text:
                    self.system.append(text)
            elif kind in ("tool_addition", "tool_removal"):
                self._tool_change(block, kind, param)
            else:
                raise untranslatable(param, self.provider, f"system message block {kind!r}")
        config = message.get("output_config")
        if isinstance(config, dict) and config.get("effort") is not None:
            self.effort = _parse_effort(config["effort"], f"{where}.output_config.effort")

    def _tool_change(self, block: JsonObject, kind: str, param: str) -> None:
        tool = expect(block.get("tool"), dict, f"{param}.tool", "an object")
        if tool.get("type") == "tool_definition" and kind == "tool_addition":
            definition, _ = self._parse_tool(tool.get("definition"), f"{param}.tool.definition")
            self._tools[definition.name] = definition
            name = definition.name
        elif tool.get("type") == "tool_reference":
            name = self._declared(tool.get("name"), f"{param}.tool.name")
        else:
            raise untranslatable(f"{param}.tool", self.provider, f"tool {tool.get('type')!r}")
        self._offered[name] = kind == "tool_addition"

    def _parse_block(self, block: Any, param: str) -> Part | None:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind in ("text", "image"):
            return self._parse_text_or_image(block, kind, param)
        if kind == "tool_use":
            call = ToolCall(
                id=expect(block.get("id"), str, f"{param}.id", "a string"),
                name=expect(block.get("name"), str, f"{param}.name", "a string"),
                arguments=expect(block.get("input", {}), dict, f"{param}.input", "an object"),
            )
            self._calls.note(call)
            return call
        if kind == "tool_result":
            return self._parse_result(block, param)
        if kind == "thinking":
            text = expect(block.get("thinking"), str, f"{param}.thinking", "a string")
            signature = expect(block.get("signature", ""), str, f"{param}.signature", "a string")
            return read_signature(text, signature)
        if kind == "redacted_thinking":
            return None  # encrypted: only Anthropic reads it, and passes it through
        raise untranslatable(param, self.provider, f"content block {kind!r}")

    def _parse_result(self, block: JsonObject, param: str) -> ToolResult:
        content = block.get("content")
        if content is None or isinstance(content, str):
            parts: tuple[Text | Image, ...] = (Text(content),) if content else ()
        else:
            expect(content, list, f"{param}.content", "a string or an array of blocks")
            parts = tuple(
                self._parse_result_block(item, f"{param}.content.{i}")
                for i, item in enumerate(content)
            )
        is_error = block.get("is_error") is True
        return self._calls.result(block.get("tool_use_id"), parts, is_error, f"{param}.tool_use_id")

    def _parse_result_block(self, block: Any, param: str) -> Text | Image:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind in ("text", "image"):
            return self._parse_text_or_image(block, kind, param)
        if kind == "tool_reference":
            # A tool search found a deferred tool: it is offered from here on.
            name = self._declared(block.get("tool_name"), f"{param}.tool_name")
            self._offered[name] = True
            return Text(f"Tool {name} is now available.")
        raise untranslatable(param, self.provider, f"tool result block {kind!r}")

    def _parse_text_or_image(self, block: JsonObject, kind: str, param: str) -> Text | Image:
        if kind == "text":
            return Text(expect(block.get("text"), str, f"{param}.text", "a string"))
        return _parse_image(block.get("source"), f"{param}.source", self.provider)

    def _declared(self, name: Any, param: str) -> str:
        """The name of a tool the request declares (or a message defined)."""
        if expect(name, str, param, "a string") not in self._tools:
            raise invalid(param, f"names the tool {name!r}, which is not declared")
        return str(name)

    def _parse_tool(self, tool: Any, param: str) -> tuple[Tool, bool]:
        """The tool, and whether it is deferred (offered only once found or added)."""
        expect(tool, dict, param, "an object")
        if tool.get("type", "custom") not in ("custom", None):
            raise untranslatable(param, self.provider, f"server tool {tool.get('type')!r}")
        parsed = Tool(
            name=expect(tool.get("name"), str, f"{param}.name", "a string"),
            description=optional_str(tool, "description", f"{param}.description"),
            parameters=expect(tool.get("input_schema"), dict, f"{param}.input_schema", "an object"),
        )
        return parsed, tool.get("defer_loading") is True


def _role(message: Any) -> Any:
    return message.get("role") if isinstance(message, dict) else None


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


def without_gateway_thinking(body: JsonObject) -> JsonObject:
    """A Messages body for Anthropic itself, without the thinking blocks the gateway relayed
    from other providers: Anthropic refuses signatures it did not make (a conversation may
    have moved between kinds through fallback)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not any(_has_gateway_thinking(m) for m in messages):
        return body
    kept = [
        message | {"content": [b for b in message["content"] if not _is_gateway_thinking(b)]}
        if _has_gateway_thinking(message)
        else message
        for message in messages
    ]
    return body | {"messages": kept}


def _has_gateway_thinking(message: Any) -> bool:
    content = message.get("content") if isinstance(message, dict) else None
    return isinstance(content, list) and any(_is_gateway_thinking(block) for block in content)


def _is_gateway_thinking(block: Any) -> bool:
    return (
        isinstance(block, dict)
        and block.get("type") == "thinking"
        and is_gateway_signature(block.get("signature"))
    )


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
