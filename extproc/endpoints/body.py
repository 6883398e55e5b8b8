"""Reading a request body once, and the checks every model call shares."""

from __future__ import annotations

from typing import Any

import orjson

from extproc.errors import BadRequest
from extproc.translators.ir import JsonObject

MAX_MODEL_NAME = 256
MAX_CHOICES = 128
"""The most choices (`n`) one request may ask for."""
BOM = b"\xef\xbb\xbf"

CLIENT_FORBIDDEN_FIELDS = (
    "api_base",
    "base_url",
    "api_key",
    "extra_headers",
    "custom_llm_provider",
)
"""Fields some SDKs send to steer a proxy; the upstream is chosen by configuration alone."""


def parse_body(raw: bytes) -> JsonObject:
    """The body as a JSON object; anything else is a 400 that says what is wrong."""
    if not raw:
        raise BadRequest("The request body is empty; send a JSON object.")
    try:
        document = orjson.loads(raw.removeprefix(BOM))
    except orjson.JSONDecodeError as error:
        raise BadRequest(f"The request body is not valid JSON: {error}.") from None
    if not isinstance(document, dict):
        raise BadRequest("The request body must be a JSON object.")
    return document


def read_model(body: JsonObject) -> str:
    """The `model` field, safe to put in a header or a log line."""
    model = body.get("model")
    if model is None:
        raise BadRequest("You must provide a model parameter.", param="model")
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' must be a non-empty string.", param="model")
    if len(model) > MAX_MODEL_NAME or not model.isprintable():
        raise BadRequest(
            f"'model' must be at most {MAX_MODEL_NAME} printable characters.", param="model"
        )
    return model


def check_common(body: JsonObject) -> None:
    """Checks that apply to every model call."""
    for name in CLIENT_FORBIDDEN_FIELDS:
        if name in body:
            raise BadRequest(
                f"'{name}' is not accepted: the gateway chooses the upstream.",
                param=name,
                code="unsupported_parameter",
            )
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise BadRequest("'stream' must be a boolean.", param="stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise BadRequest("'stream_options' must be an object.", param="stream_options")


def require(body: JsonObject, name: str, kinds: tuple[type, ...], what: str) -> Any:
    """A required field of the given JSON kinds; `what` completes 'must be …'."""
    value = body.get(name)
    if value is None:
        raise BadRequest(f"Missing required parameter: '{name}'.", param=name)
    wrong_kind = not isinstance(value, kinds) or isinstance(value, bool)
    if wrong_kind or (isinstance(value, str | list) and not value):
        raise BadRequest(f"'{name}' must be {what}.", param=name)
    return value


def check_positive_int(body: JsonObject, name: str, *, maximum: int | None = None) -> None:
    """An optional integer field that must be at least 1 (and at most `maximum`)."""
    value = body.get(name)
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BadRequest(f"'{name}' must be an integer of at least 1.", param=name)
    if maximum is not None and value > maximum:
        raise BadRequest(f"'{name}' must be at most {maximum}.", param=name)


def require_messages(body: JsonObject) -> None:
    """`messages`: a non-empty array of objects (OpenAI chat and Anthropic messages alike)."""
    messages = require(body, "messages", (list,), "a non-empty array of messages")
    if not all(isinstance(message, dict) for message in messages):
        raise BadRequest("Every entry of 'messages' must be an object.", param="messages")
