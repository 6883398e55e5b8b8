"""Neutral requests → Gemini `generateContent` and `batchEmbedContents` bodies, and the
quota's view of a Gemini body.

Gemini names the model in the path, calls the assistant `model`, answers tool calls by the
tool's name (`functionResponse`), and takes a JSON Schema for tools and structured output
(`parametersJsonSchema`, `responseJsonSchema`).
"""

from __future__ import annotations

from extproc.translators.common import untranslatable
from extproc.translators.ir import (
    ChatRequest,
    EmbeddingRequest,
    Image,
    JsonObject,
    Message,
    OutputFormat,
    Part,
    Text,
    ToolCall,
    ToolChoice,
    ToolResult,
)
from extproc.translators.reasoning import thinking_budget
from extproc.translators.schema import Operation

INPUT_FIELDS: dict[Operation, tuple[str, ...]] = {
    "chat": ("systemInstruction", "contents", "tools"),
    "embeddings": ("requests",),
}
SKIP_THOUGHT_SIGNATURE = "skip_thought_signature_validator"
"""Gemini's documented stand-in for the thought signature of a function call made by another
model or in another schema: thinking models refuse replayed calls without one."""
_JSON = "application/json"


def build_chat(request: ChatRequest, default_max_tokens: int) -> JsonObject:
    if request.parallel_tool_calls is False:
        raise untranslatable(request.param("parallel_tool_calls"), "gemini")
    body: JsonObject = {"contents": [_build_content(message) for message in request.messages]}
    if request.system:
        body["systemInstruction"] = {"parts": [{"text": text} for text in request.system]}
    cap = request.max_tokens
    thinking: JsonObject | None = None
    budget = thinking_budget(request)
    if budget is not None:
        thinking = {"thinkingBudget": budget}
        if request.reasoning_shown and budget:
            thinking["includeThoughts"] = True
        # Gemini counts thinking as output: the answer keeps the cap the client set.
        cap = None if cap is None else cap + budget
    config = {
        "maxOutputTokens": cap,
        "thinkingConfig": thinking,
        "temperature": request.temperature,
        "topP": request.top_p,
        "topK": request.top_k,
        "stopSequences": list(request.stop) or None,
        "seed": request.seed,
        "presencePenalty": request.presence_penalty,
        "frequencyPenalty": request.frequency_penalty,
    }
    generation = {name: value for name, value in config.items() if value is not None}
    if request.output_format is not None:
        generation |= _output_format(request.output_format)
    if generation:
        body["generationConfig"] = generation
    if request.tools:
        declarations = [
            {"name": tool.name, "parametersJsonSchema": tool.parameters}
            | ({"description": tool.description} if tool.description is not None else {})
            for tool in request.tools
        ]
        body["tools"] = [{"functionDeclarations": declarations}]
    if request.tool_choice is not None:
        body["toolConfig"] = {"functionCallingConfig": _calling_config(request.tool_choice)}
    return body


def _build_content(message: Message) -> JsonObject:
    parts: list[JsonObject] = []
    signed = False
    for part in message.parts:
        built = _build_part(part)
        if built is None:
            continue
        if isinstance(part, ToolCall) and not signed:
            built["thoughtSignature"] = SKIP_THOUGHT_SIGNATURE
            signed = True
        parts.append(built)
    return {"role": "model" if message.role == "assistant" else "user", "parts": parts}


def _build_part(part: Part) -> JsonObject | None:
    if isinstance(part, Text):
        return {"text": part.text} if part.text else None
    if isinstance(part, Image):
        if part.data is None:
            raise untranslatable("messages", "gemini", "images by URL; send them as data URLs")
        return {"inlineData": {"mimeType": part.media_type, "data": part.data}}
    if isinstance(part, ToolCall):
        return {"functionCall": {"id": part.id, "name": part.name, "args": part.arguments}}
    if isinstance(part, ToolResult):
        return _build_result(part)
    return None  # thinking: Gemini's own is not kept, its calls carry the skip signature


def _build_result(result: ToolResult) -> JsonObject:
    if any(isinstance(part, Image) for part in result.content):
        raise untranslatable("messages", "gemini", "images in a tool result")
    text = "".join(part.text for part in result.content if isinstance(part, Text))
    # Gemini's convention: `output` holds a result, `error` a failure.
    response = {"error" if result.is_error else "output": text}
    return {"functionResponse": {"id": result.call_id, "name": result.name, "response": response}}


def _output_format(output: OutputFormat) -> JsonObject:
    if output.kind == "json_object":
        return {"responseMimeType": _JSON}
    return {"responseMimeType": _JSON, "responseJsonSchema": output.schema}


def _calling_config(choice: ToolChoice) -> JsonObject:
    modes = {"auto": "AUTO", "required": "ANY", "none": "NONE", "tool": "ANY"}
    config: JsonObject = {"mode": modes[choice.mode]}
    if choice.name is not None:
        config["allowedFunctionNames"] = [choice.name]
    return config


def build_embeddings(request: EmbeddingRequest, model: str) -> JsonObject:
    """One `batchEmbedContents` request per input, in order."""
    extra = {} if request.dimensions is None else {"outputDimensionality": request.dimensions}
    return {
        "requests": [
            {"model": f"models/{model}", "content": {"parts": [{"text": text}]}} | extra
            for text in request.inputs
        ]
    }


# The quota's view of a Gemini body.


def output_cap(operation: Operation, body: JsonObject) -> int | None:
    if operation == "embeddings":
        return 0
    config = body.get("generationConfig")
    config = config if isinstance(config, dict) else {}
    cap = config.get("maxOutputTokens")
    return cap * _candidates(config) if isinstance(cap, int) else None


def with_output_cap(operation: Operation, body: JsonObject, cap: int) -> JsonObject:
    config = body.get("generationConfig")
    config = config if isinstance(config, dict) else {}
    per_candidate = max(1, cap // _candidates(config))
    return body | {"generationConfig": config | {"maxOutputTokens": per_candidate}}


def _candidates(config: JsonObject) -> int:
    count = config.get("candidateCount")
    return count if isinstance(count, int) and count > 1 else 1
