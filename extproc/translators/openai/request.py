"""OpenAI Chat Completions and Embeddings requests ⇄ the neutral form, and the quota's view
of an OpenAI body (which fields are the prompt, which the output cap)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from extproc.translators.common import (
    CallNames,
    arguments_text,
    data_url,
    expect,
    image_from_url,
    invalid,
    merge_turns,
    optional_bool,
    optional_effort,
    optional_int,
    optional_number,
    optional_str,
    parse_arguments,
    untranslatable,
)
from extproc.translators.ir import (
    ChatRequest,
    EmbeddingRequest,
    Image,
    JsonObject,
    Message,
    OutputFormat,
    Part,
    Role,
    Text,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
)
from extproc.translators.reasoning import reasoning_effort
from extproc.translators.schema import Operation, merged_with

COMPLETIONS_DEFAULT_MAX_TOKENS = 16
"""OpenAI's documented default for /v1/completions."""

INPUT_FIELDS: dict[Operation, tuple[str, ...]] = {
    "chat": ("messages", "tools", "functions"),
    "text_completion": ("prompt",),
    "embeddings": ("input",),
}
_CAP_FIELDS = ("max_completion_tokens", "max_tokens")

_HANDLED = frozenset(
    {
        "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p",
        "stop", "tools", "tool_choice", "parallel_tool_calls", "response_format", "user",
        "safety_identifier", "seed", "presence_penalty", "frequency_penalty", "stream",
        "stream_options", "reasoning_effort",
    }
)  # fmt: skip
_WITHOUT_EFFECT = frozenset({"metadata", "prompt_cache_key", "prompt_cache_retention"})
"""Fields that tag or cache a request but do not change its answer: not carried."""
_DEFAULTS: dict[str, tuple[Any, ...]] = {
    "n": (1,),
    "logprobs": (False,),
    "store": (False,),
    "service_tier": ("auto", "default"),
    "modalities": (["text"],),
    "logit_bias": ({},),
}
"""Fields accepted at their default values only (other values change the answer)."""


# Client side: an OpenAI client's chat request → neutral.


def parse_chat(body: JsonObject, provider: str) -> ChatRequest:
    for name, value in body.items():
        if name in _HANDLED or name in _WITHOUT_EFFECT or value is None:
            continue
        if value not in _DEFAULTS.get(name, ()):
            raise untranslatable(name, provider)
    system, messages = _parse_messages(body["messages"], provider)
    options = body.get("stream_options") or {}
    return ChatRequest(
        messages=messages,
        system=system,
        max_tokens=optional_int(body, "max_completion_tokens") or optional_int(body, "max_tokens"),
        temperature=optional_number(body, "temperature"),
        top_p=optional_number(body, "top_p"),
        stop=_parse_stop(body.get("stop")),
        tools=tuple(
            _parse_tool(tool, f"tools.{i}") for i, tool in enumerate(body.get("tools") or ())
        ),
        tool_choice=_parse_tool_choice(body.get("tool_choice")),
        parallel_tool_calls=optional_bool(body, "parallel_tool_calls"),
        output_format=_parse_response_format(body.get("response_format")),
        user=optional_str(body, "safety_identifier") or optional_str(body, "user"),
        seed=optional_int(body, "seed"),
        presence_penalty=optional_number(body, "presence_penalty"),
        frequency_penalty=optional_number(body, "frequency_penalty"),
        reasoning_effort=optional_effort(body.get("reasoning_effort"), "reasoning_effort"),
        stream=body.get("stream") is True,
        stream_usage=options.get("include_usage") is True,
        param_names={"output_format": "response_format"},
    )


def _parse_messages(
    messages: list[JsonObject], provider: str
) -> tuple[tuple[str, ...], tuple[Message, ...]]:
    system: list[str] = []
    turns: list[tuple[Role, list[Part]]] = []
    calls = CallNames()
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        role = message.get("role")
        for name in ("name", "function_call", "audio"):
            if message.get(name) is not None:
                raise untranslatable(f"{where}.{name}", provider)
        if role in ("system", "developer"):
            system.append(_text_only(message.get("content"), f"{where}.content"))
        elif role == "user":
            turns.append(("user", _parse_user_content(message.get("content"), where, provider)))
        elif role == "assistant":
            turns.append(("assistant", _parse_assistant(message, where, calls)))
        elif role == "tool":
            text = _text_only(message.get("content"), f"{where}.content")
            content = (Text(text),) if text else ()
            result = calls.result(
                message.get("tool_call_id"), content, False, f"{where}.tool_call_id"
            )
            turns.append(("user", [result]))
        else:
            raise untranslatable(f"{where}.role", provider, f"role {role!r}")
    return tuple(system), merge_turns(turns)


def _text_only(content: Any, param: str) -> str:
    """Content that may only hold text: a string, or an array of text parts."""
    if isinstance(content, str):
        return content
    expect(content, list, param, "a string or an array of text parts")
    texts = []
    for index, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "text":
            raise invalid(f"{param}.{index}", "must be a text part")
        texts.append(expect(part.get("text"), str, f"{param}.{index}.text", "a string"))
    return "".join(texts)


def _parse_user_content(content: Any, where: str, provider: str) -> list[Part]:
    if isinstance(content, str):
        return [Text(content)] if content else []
    expect(content, list, f"{where}.content", "a string or an array of content parts")
    parts: list[Part] = []
    for index, part in enumerate(content):
        param = f"{where}.content.{index}"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append(Text(expect(part.get("text"), str, f"{param}.text", "a string")))
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            parts.append(image_from_url(url, f"{param}.image_url.url"))
        else:
            raise untranslatable(param, provider, f"content part {kind!r}")
    return parts


def _parse_assistant(message: JsonObject, where: str, calls: CallNames) -> list[Part]:
    parts: list[Part] = []
    content = message.get("content")
    if content is not None:
        text = _assistant_text(content, f"{where}.content")
        if text:
            parts.append(Text(text))
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        parts.append(Text(refusal))
    for index, call in enumerate(message.get("tool_calls") or ()):
        param = f"{where}.tool_calls.{index}"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or call.get("type", "function") != "function":
            raise invalid(param, "must be a function tool call")
        tool_call = ToolCall(
            id=expect(call.get("id"), str, f"{param}.id", "a string"),
            name=expect(function.get("name"), str, f"{param}.function.name", "a string"),
            arguments=parse_arguments(function.get("arguments"), f"{param}.function.arguments"),
        )
        calls.note(tool_call)
        parts.append(tool_call)
    return parts


def _assistant_text(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    expect(content, list, param, "a string or an array of text parts")
    texts = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in ("text", "refusal"):
            raise invalid(f"{param}.{index}", "must be a text or refusal part")
        texts.append(expect(part.get(kind), str, f"{param}.{index}.{kind}", "a string"))
    return "".join(texts)


def _parse_stop(stop: Any) -> tuple[str, ...]:
    if stop is None:
        return ()
    if isinstance(stop, str):
        return (stop,)
    expect(stop, list, "stop", "a string or an array of strings")
    return tuple(expect(item, str, "stop", "a string or an array of strings") for item in stop)


def _parse_tool(tool: Any, param: str) -> Tool:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or tool.get("type") != "function":
        raise invalid(param, "must be a function tool ({'type': 'function', 'function': {...}})")
    parameters = function.get("parameters")
    return Tool(
        name=expect(function.get("name"), str, f"{param}.function.name", "a string"),
        description=optional_str(function, "description", f"{param}.function.description"),
        parameters=expect(parameters, dict, f"{param}.function.parameters", "an object")
        if parameters is not None
        else {"type": "object", "properties": {}},
    )


def _parse_tool_choice(choice: Any) -> ToolChoice | None:
    if choice is None:
        return None
    if choice in ("auto", "none", "required"):
        return ToolChoice(choice)
    function = choice.get("function") if isinstance(choice, dict) else None
    if not isinstance(function, dict) or choice.get("type") != "function":
        raise invalid("tool_choice", "must be auto, none, required or a function to call")
    return ToolChoice("tool", expect(function.get("name"), str, "tool_choice", "a function name"))


def _parse_response_format(value: Any) -> OutputFormat | None:
    kind = value.get("type") if isinstance(value, dict) else None
    if value is None or kind == "text":
        return None
    if kind == "json_object":
        return OutputFormat("json_object")
    if kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise invalid("response_format.json_schema.schema", "must be an object")
        return OutputFormat("json_schema", schema, optional_str(spec, "name"))
    raise invalid("response_format", "must have type text, json_object or json_schema")


# Provider side: neutral → an OpenAI-compatible provider's chat request.


def build_chat(request: ChatRequest, default_max_tokens: int) -> JsonObject:
    """The Chat Completions body (without `model`; the caller sets the upstream one)."""
    if request.top_k is not None:
        raise untranslatable(request.param("top_k"), "openai")
    body: JsonObject = {"messages": _build_messages(request)}
    fields = {
        "max_completion_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "stop": list(request.stop) or None,
        "seed": request.seed,
        "presence_penalty": request.presence_penalty,
        "frequency_penalty": request.frequency_penalty,
        "reasoning_effort": reasoning_effort(request),
        "user": request.user,
        "parallel_tool_calls": request.parallel_tool_calls if request.tools else None,
    }
    body.update((name, value) for name, value in fields.items() if value is not None)
    if request.tools:
        body["tools"] = [_build_tool(tool) for tool in request.tools]
    if request.tool_choice is not None:
        body["tool_choice"] = _build_tool_choice(request.tool_choice)
    if request.output_format is not None:
        body["response_format"] = _build_response_format(request.output_format)
    if request.stream:
        body["stream"] = True
    return body


def _build_messages(request: ChatRequest) -> list[JsonObject]:
    messages: list[JsonObject] = [{"role": "system", "content": text} for text in request.system]
    for message in request.messages:
        if message.role == "assistant":
            messages.append(_build_assistant(message))
            continue
        rest: list[Part] = []
        for part in message.parts:
            if isinstance(part, ToolResult):
                messages.append(_build_tool_result(part))
            else:
                rest.append(part)
        if rest:
            messages.append({"role": "user", "content": _build_user_content(rest)})
    return messages


def _build_assistant(message: Message) -> JsonObject:
    text = "".join(part.text for part in message.parts if isinstance(part, Text))
    calls = [part for part in message.parts if isinstance(part, ToolCall)]
    built: JsonObject = {"role": "assistant", "content": text or None}
    if calls:
        built["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": arguments_text(call.arguments)},
            }
            for call in calls
        ]
    return built


def _build_tool_result(result: ToolResult) -> JsonObject:
    if any(isinstance(part, Image) for part in result.content):
        raise untranslatable("messages", "openai", "images in a tool result")
    text = "".join(part.text for part in result.content if isinstance(part, Text))
    return {"role": "tool", "tool_call_id": result.call_id, "content": text}


def _build_user_content(parts: list[Part]) -> str | list[JsonObject]:
    if len(parts) == 1 and isinstance(parts[0], Text):
        return parts[0].text
    built: list[JsonObject] = []
    for part in parts:
        if isinstance(part, Text):
            built.append({"type": "text", "text": part.text})
        elif isinstance(part, Image):
            built.append({"type": "image_url", "image_url": {"url": data_url(part)}})
    return built


def _build_tool(tool: Tool) -> JsonObject:
    function: JsonObject = {"name": tool.name, "parameters": tool.parameters}
    if tool.description is not None:
        function["description"] = tool.description
    return {"type": "function", "function": function}


def _build_tool_choice(choice: ToolChoice) -> str | JsonObject:
    if choice.mode == "tool":
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode


def _build_response_format(output: OutputFormat) -> JsonObject:
    if output.kind == "json_object":
        return {"type": "json_object"}
    return {
        "type": "json_schema",
        "json_schema": {"name": output.name or "response", "schema": output.schema},
    }


# Embeddings.


def parse_embeddings(body: JsonObject, provider: str) -> EmbeddingRequest:
    for name in body:
        if name not in ("model", "input", "dimensions", "encoding_format", "user"):
            raise untranslatable(name, provider)
    inputs = body["input"]
    items = [inputs] if isinstance(inputs, str) else inputs
    if not all(isinstance(item, str) for item in items):
        raise untranslatable("input", provider, "token arrays; send text")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise invalid("encoding_format", "must be float or base64")
    return EmbeddingRequest(
        inputs=tuple(items),
        dimensions=optional_int(body, "dimensions"),
        base64=encoding == "base64",
    )


def build_embeddings(request: EmbeddingRequest, model: str) -> JsonObject:
    body: JsonObject = {"input": list(request.inputs), "model": model}
    if request.dimensions is not None:
        body["dimensions"] = request.dimensions
    return body


# The quota's view of an OpenAI body.


def output_cap(operation: Operation, body: JsonObject) -> int | None:
    """`max_completion_tokens`/`max_tokens` times `n`; 0 for embeddings; None if unset."""
    if operation == "embeddings":
        return 0
    fields = _CAP_FIELDS if operation == "chat" else ("max_tokens",)
    cap = next((body[name] for name in fields if isinstance(body.get(name), int)), None)
    if cap is None and operation == "text_completion":
        cap = COMPLETIONS_DEFAULT_MAX_TOKENS
    return None if cap is None else cap * _choices(body)


def with_output_cap(operation: Operation, body: JsonObject, cap: int) -> JsonObject:
    """The body asking for at most `cap` output tokens in all (split across `n` choices)."""
    fields = _CAP_FIELDS if operation == "chat" else ("max_tokens",)
    field = next((name for name in fields if name in body), "max_tokens")
    return body | {field: max(1, cap // _choices(body))}


def _choices(body: JsonObject) -> int:
    choices = body.get("n")
    return choices if isinstance(choices, int) and choices > 1 else 1


def merge_options(body: JsonObject, options: Mapping[str, Any]) -> JsonObject:
    """Forced options win; a forced output cap replaces the client's in either spelling
    (OpenAI refuses a body with both `max_tokens` and `max_completion_tokens`)."""
    forced = [name for name in _CAP_FIELDS if name in options]
    if forced:
        body = {name: value for name, value in body.items() if name not in _CAP_FIELDS}
    return merged_with(body, options)


def with_stream_usage(operation: Operation, body: JsonObject) -> tuple[JsonObject, bool]:
    """For a stream, the body asking for the usage event; True when that was added (the
    client did not ask for it and must not see it)."""
    if operation == "embeddings" or body.get("stream") is not True:
        return body, False
    options = body.get("stream_options") or {}
    if options.get("include_usage") is True:
        return body, False
    return body | {"stream_options": options | {"include_usage": True}}, True
