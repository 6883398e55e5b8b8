"""OpenAI Responses requests → the neutral form, and the quota's view of a Responses body.

A Responses request is a list of input items (messages, function calls and their outputs)
plus `instructions`. Items only the model that wrote them can read (reasoning) are dropped
for other providers; anything that needs state kept by the provider (`previous_response_id`,
`store`, item references, conversations) is refused, since only OpenAI keeps it.
"""

from __future__ import annotations

from typing import Any

from extproc.errors import BadRequest
from extproc.translators.common import (
    CallNames,
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
    NAMESPACE_SEPARATOR,
    ChatRequest,
    Image,
    JsonObject,
    OutputFormat,
    Part,
    Role,
    Text,
    Tool,
    ToolCall,
    ToolChoice,
)
from extproc.translators.schema import Operation

INPUT_FIELDS: dict[Operation, tuple[str, ...]] = {"chat": ("instructions", "input", "tools")}

_HANDLED = frozenset(
    {
        "model", "input", "instructions", "max_output_tokens", "temperature", "top_p",
        "tools", "tool_choice", "parallel_tool_calls", "text", "user", "safety_identifier",
        "stream", "stream_options", "store", "include", "reasoning",
    }
)  # fmt: skip
_WITHOUT_EFFECT = frozenset(
    {"metadata", "client_metadata", "prompt_cache_key", "prompt_cache_retention"}
)
"""Fields that tag or cache a request but do not change its answer: not carried."""
_DEFAULTS: dict[str, tuple[Any, ...]] = {
    "background": (False,),
    "truncation": ("disabled",),
    "service_tier": ("auto", "default"),
}
"""Fields accepted at their default values only (other values change the answer)."""
_STATEFUL = ("previous_response_id", "conversation", "prompt")
"""Fields that point at state kept by OpenAI (earlier responses, conversations, prompts)."""
_DROPPED_ITEMS = frozenset({"reasoning"})
"""Input items only the model that wrote them can read (OpenAI's reasoning, often encrypted);
other providers get the conversation without them."""


def parse_chat(body: JsonObject, provider: str) -> ChatRequest:
    for name in _STATEFUL:
        if body.get(name) is not None:
            raise _needs_state(name, provider)
    if body.get("store") is True:
        raise _needs_state("store", provider)
    for name, value in body.items():
        if name in _HANDLED or name in _WITHOUT_EFFECT or name in _STATEFUL or value is None:
            continue
        if value not in _DEFAULTS.get(name, ()):
            raise untranslatable(name, provider)
    text = body.get("text") or {}
    expect(text, dict, "text", "an object")
    if text.get("verbosity") not in (None, "medium"):
        raise untranslatable("text.verbosity", provider)
    # A reasoning summary only describes thinking, which translated answers do not return.
    reasoning = body.get("reasoning") or {}
    expect(reasoning, dict, "reasoning", "an object")
    instructions = optional_str(body, "instructions")
    system, messages = _parse_input(body.get("input"), provider)
    return ChatRequest(
        messages=merge_turns(messages),
        system=((instructions,) if instructions else ()) + tuple(system),
        max_tokens=optional_int(body, "max_output_tokens"),
        temperature=optional_number(body, "temperature"),
        top_p=optional_number(body, "top_p"),
        tools=_parse_tools(body, provider),
        tool_choice=_parse_tool_choice(body.get("tool_choice"), provider),
        parallel_tool_calls=optional_bool(body, "parallel_tool_calls"),
        output_format=_parse_format(text.get("format")),
        user=optional_str(body, "safety_identifier") or optional_str(body, "user"),
        reasoning_effort=optional_effort(reasoning.get("effort"), "reasoning.effort"),
        stream=body.get("stream") is True,
        stream_usage=True,  # `response.completed` always carries the usage
        param_names={
            "max_tokens": "max_output_tokens",
            "output_format": "text.format",
            "system": "instructions",
            "messages": "input",
            "stop": "input",
            "reasoning_effort": "reasoning.effort",
        },
    )


def _needs_state(name: str, provider: str) -> BadRequest:
    return BadRequest(
        f"'{name}' needs responses stored by the provider, and this model's provider "
        f"({provider}) keeps none: send the whole conversation in 'input' with store=false.",
        param=name,
        code="unsupported_parameter",
    )


def _parse_input(value: Any, provider: str) -> tuple[list[str], list[tuple[Role, list[Part]]]]:
    if isinstance(value, str):
        return [], [("user", [Text(value)])]
    expect(value, list, "input", "a string or an array of input items")
    system: list[str] = []
    turns: list[tuple[Role, list[Part]]] = []
    calls = CallNames()
    for index, item in enumerate(value):
        where = f"input.{index}"
        expect(item, dict, where, "an object")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role in ("system", "developer"):
                system.append(_text_only(item.get("content"), f"{where}.content"))
            elif role in ("user", "assistant"):
                turns.append((role, _parse_content(item.get("content"), where, provider)))
            else:
                raise invalid(f"{where}.role", "must be user, assistant, system or developer")
        elif kind == "function_call":
            name = expect(item.get("name"), str, f"{where}.name", "a string")
            namespace = optional_str(item, "namespace", f"{where}.namespace")
            call = ToolCall(
                id=expect(item.get("call_id"), str, f"{where}.call_id", "a string"),
                name=name if namespace is None else namespace + NAMESPACE_SEPARATOR + name,
                arguments=parse_arguments(item.get("arguments"), f"{where}.arguments"),
            )
            calls.note(call)
            turns.append(("assistant", [call]))
        elif kind == "function_call_output":
            output = _parse_output(item.get("output"), f"{where}.output", provider)
            result = calls.result(item.get("call_id"), output, False, f"{where}.call_id")
            turns.append(("user", [result]))
        elif kind == "item_reference":
            raise _needs_state(where, provider)
        elif kind not in _DROPPED_ITEMS:
            raise untranslatable(where, provider, f"input item {kind!r}")
    return system, turns


def _parse_content(content: Any, where: str, provider: str) -> list[Part]:
    if isinstance(content, str):
        return [Text(content)] if content else []
    expect(content, list, f"{where}.content", "a string or an array of content parts")
    return [_parse_part(part, f"{where}.content.{i}", provider) for i, part in enumerate(content)]


def _parse_part(part: Any, param: str, provider: str) -> Text | Image:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text"):
        return Text(expect(part.get("text"), str, f"{param}.text", "a string"))
    if kind == "refusal":
        return Text(expect(part.get("refusal"), str, f"{param}.refusal", "a string"))
    if kind == "input_image" and part.get("image_url") is not None:
        return image_from_url(part.get("image_url"), f"{param}.image_url")
    raise untranslatable(param, provider, f"content part {kind!r}")


def _parse_output(output: Any, param: str, provider: str) -> tuple[Text | Image, ...]:
    if isinstance(output, str):
        return (Text(output),) if output else ()
    expect(output, list, param, "a string or an array of content parts")
    return tuple(_parse_part(part, f"{param}.{i}", provider) for i, part in enumerate(output))


def _text_only(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    expect(content, list, param, "a string or an array of text parts")
    texts = []
    for index, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "input_text":
            raise invalid(f"{param}.{index}", "must be an input_text part")
        texts.append(expect(part.get("text"), str, f"{param}.{index}.text", "a string"))
    return "".join(texts)


def _parse_tools(body: JsonObject, provider: str) -> tuple[Tool, ...]:
    """Function tools, those grouped in namespaces included (flattened: every provider takes
    a plain list)."""
    tools = body.get("tools") or []
    expect(tools, list, "tools", "an array")
    parsed: list[Tool] = []
    for index, tool in enumerate(tools):
        param = f"tools.{index}"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind == "namespace":
            namespace = expect(tool.get("name"), str, f"{param}.name", "a string")
            inner = expect(tool.get("tools"), list, f"{param}.tools", "an array")
            parsed += [
                _parse_tool(member, f"{param}.tools.{i}", provider, namespace)
                for i, member in enumerate(inner)
            ]
        else:
            parsed.append(_parse_tool(tool, param, provider))
    return tuple(parsed)


def _parse_tool(tool: Any, param: str, provider: str, namespace: str | None = None) -> Tool:
    kind = tool.get("type") if isinstance(tool, dict) else None
    if kind != "function":
        # Built-in tools (web search, file search, code interpreter, …) run at OpenAI.
        raise untranslatable(param, provider, f"built-in tool {kind!r}")
    name = expect(tool.get("name"), str, f"{param}.name", "a string")
    parameters = tool.get("parameters")
    return Tool(
        name=name if namespace is None else namespace + NAMESPACE_SEPARATOR + name,
        description=optional_str(tool, "description", f"{param}.description"),
        parameters=expect(parameters, dict, f"{param}.parameters", "an object")
        if parameters is not None
        else {"type": "object", "properties": {}},
        namespace=namespace,
    )


def _parse_tool_choice(choice: Any, provider: str) -> ToolChoice | None:
    if choice is None:
        return None
    if choice in ("auto", "none", "required"):
        return ToolChoice(choice)
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "function":
        return ToolChoice("tool", expect(choice.get("name"), str, "tool_choice.name", "a string"))
    if kind is not None:
        raise untranslatable("tool_choice", provider, f"tool choice {kind!r}")
    raise invalid("tool_choice", "must be auto, none, required or a function to call")


def _parse_format(value: Any) -> OutputFormat | None:
    kind = value.get("type") if isinstance(value, dict) else None
    if value is None or kind == "text":
        return None
    if kind == "json_object":
        return OutputFormat("json_object")
    if kind == "json_schema":
        schema = value.get("schema")
        if not isinstance(schema, dict):
            raise invalid("text.format.schema", "must be an object")
        return OutputFormat("json_schema", schema, optional_str(value, "name", "text.format.name"))
    raise invalid("text.format", "must have type text, json_object or json_schema")


# The quota's view of a Responses body (as a provider that speaks it gets it).


def output_cap(operation: Operation, body: JsonObject) -> int | None:
    cap = body.get("max_output_tokens")
    return cap if isinstance(cap, int) and not isinstance(cap, bool) else None


MIN_OUTPUT_CAP = 16
"""OpenAI refuses a `max_output_tokens` below this."""


def with_output_cap(operation: Operation, body: JsonObject, cap: int) -> JsonObject:
    return body | {"max_output_tokens": max(MIN_OUTPUT_CAP, cap)}
