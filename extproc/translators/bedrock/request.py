"""The neutral form → Amazon Bedrock's Converse requests (one shape for every model family
Bedrock serves), and the quota's view of a Converse body."""

from __future__ import annotations

from extproc.translators.common import untranslatable
from extproc.translators.ir import (
    ChatRequest,
    EmbeddingRequest,
    Image,
    JsonObject,
    Message,
    Part,
    Reasoning,
    Text,
    ToolCall,
    ToolChoice,
    ToolResult,
)
from extproc.translators.reasoning import thinking_budget
from extproc.translators.schema import Operation

INPUT_FIELDS: dict[Operation, tuple[str, ...]] = {
    "chat": ("system", "messages", "toolConfig"),
    "embeddings": ("inputText", "texts"),
}
IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/gif": "gif", "image/webp": "webp"}
KIND = "bedrock"
MIN_THINKING_BUDGET = 1024
"""Anthropic's smallest thinking budget."""


def build_chat(request: ChatRequest, default_max_tokens: int) -> JsonObject:
    """The Converse body (the model is in the path). Bedrock's Anthropic models require an
    output cap: the request's, else the cap quotas use for this model."""
    for name in ("seed", "presence_penalty", "frequency_penalty", "output_format", "top_k"):
        if getattr(request, name) is not None:
            raise untranslatable(request.param(name), KIND)
    if request.parallel_tool_calls is False:
        raise untranslatable(request.param("parallel_tool_calls"), KIND)
    body: JsonObject = {"messages": [_message(message) for message in request.messages]}
    if request.system:
        body["system"] = [{"text": text} for text in request.system]
    config = {
        "maxTokens": request.max_tokens or default_max_tokens,
        "temperature": request.temperature,
        "topP": request.top_p,
        "stopSequences": list(request.stop) or None,
    }
    body["inferenceConfig"] = {name: value for name, value in config.items() if value is not None}
    budget = thinking_budget(request)
    if budget:
        # Bedrock's Claude models think as Anthropic's do, within the output cap.
        budget = max(budget, MIN_THINKING_BUDGET)
        cap = body["inferenceConfig"]["maxTokens"]
        body["inferenceConfig"]["maxTokens"] = cap if cap > budget else cap + budget
        thinking = {"type": "enabled", "budget_tokens": budget}
        body["additionalModelRequestFields"] = {"thinking": thinking}
    if request.tool_choice is not None and request.tool_choice.mode == "none":
        # Bedrock cannot forbid calls but by sending no tools, which a conversation that
        # already holds calls may not do.
        if any(isinstance(p, ToolCall | ToolResult) for m in request.messages for p in m.parts):
            raise untranslatable(request.param("tool_choice"), KIND, "none after tool calls")
    elif request.tools:
        tools: JsonObject = {
            "tools": [
                {
                    "toolSpec": {"name": tool.name, "inputSchema": {"json": tool.parameters}}
                    | ({"description": tool.description} if tool.description is not None else {})
                }
                for tool in request.tools
            ]
        }
        choice = _tool_choice(request.tool_choice)
        if choice is not None:
            tools["toolChoice"] = choice
        body["toolConfig"] = tools
    return body


def _message(message: Message) -> JsonObject:
    # Tool results open a user turn, as Bedrock's Anthropic models require.
    results = [part for part in message.parts if isinstance(part, ToolResult)]
    others = [part for part in message.parts if not isinstance(part, ToolResult)]
    content = [_result(result) for result in results]
    content += [block for part in others if (block := _block(part)) is not None]
    return {"role": message.role, "content": content}


def _block(part: Part) -> JsonObject | None:
    if isinstance(part, Reasoning):
        # Only Bedrock's own signed thinking is left here: it goes back as it came.
        text = {"text": part.text, "signature": part.signature}
        return {"reasoningContent": {"reasoningText": text}}
    if isinstance(part, Text):
        return {"text": part.text} if part.text else None  # no empty blocks
    if isinstance(part, Image):
        return {"image": _image(part)}
    if isinstance(part, ToolCall):
        return {"toolUse": {"toolUseId": part.id, "name": part.name, "input": part.arguments}}
    return None


def _image(image: Image) -> JsonObject:
    image_format = IMAGE_FORMATS.get(image.media_type or "")
    if image.data is None or image_format is None:
        raise untranslatable("messages", KIND, "images by URL, or not PNG, JPEG, GIF or WebP")
    return {"format": image_format, "source": {"bytes": image.data}}


def _result(result: ToolResult) -> JsonObject:
    content = [
        {"text": part.text} if isinstance(part, Text) else {"image": _image(part)}
        for part in result.content
        if not isinstance(part, Text) or part.text
    ]
    return {
        "toolResult": {
            "toolUseId": result.call_id,
            "content": content or [{"text": ""}],
            "status": "error" if result.is_error else "success",
        }
    }


def _tool_choice(choice: ToolChoice | None) -> JsonObject | None:
    if choice is None or choice.mode == "auto":
        return None  # Bedrock's default
    if choice.mode == "required":
        return {"any": {}}
    return {"tool": {"name": choice.name}}


def build_embeddings(request: EmbeddingRequest, model: str) -> JsonObject:
    """An InvokeModel body for Bedrock's embedding models: Cohere's take a batch of texts,
    Amazon Titan's one text a request."""
    if model.startswith("cohere."):
        if request.dimensions is not None:
            raise untranslatable("dimensions", KIND, "Cohere's embeddings have one size")
        return {"texts": list(request.inputs), "input_type": "search_document"}
    if len(request.inputs) != 1:
        raise untranslatable("input", KIND, "Titan embeds one text a request")
    body: JsonObject = {"inputText": request.inputs[0]}
    if request.dimensions is not None:
        body["dimensions"] = request.dimensions
    return body


def output_cap(operation: Operation, body: JsonObject) -> int | None:
    if operation == "embeddings":
        return 0
    config = body.get("inferenceConfig")
    cap = config.get("maxTokens") if isinstance(config, dict) else None
    return cap if isinstance(cap, int) and not isinstance(cap, bool) else None


def with_output_cap(operation: Operation, body: JsonObject, cap: int) -> JsonObject:
    config = body.get("inferenceConfig")
    config = config if isinstance(config, dict) else {}
    return body | {"inferenceConfig": config | {"maxTokens": max(1, cap)}}
