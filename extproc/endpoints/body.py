"""Reading a request body once, and the checks every model call shares."""

from __future__ import annotations

import re
from typing import Any

import msgspec

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


_DECODER = msgspec.json.Decoder()
"""Decodes straight into Python objects: a body costs its objects and nothing more while it
is read (orjson holds a document model of twice the body's size meanwhile)."""
_LONG_NUMBER = re.compile(rb"[0-9]{19}")
"""Digits enough for an integer beyond 64 bits (or a long number inside a string)."""


def parse_body(raw: bytes | memoryview) -> JsonObject:
    """The body as a JSON object; anything else is a 400 that says what is wrong. A view (of
    the bytes received) is released once read: they are freed as soon as nothing else shows
    them, long before the request is answered."""
    if not raw:
        raise BadRequest("The request body is empty; send a JSON object.")
    text = raw[len(BOM) :] if raw[: len(BOM)] == BOM else raw
    try:
        document = _DECODER.decode(text)
        if _LONG_NUMBER.search(text):
            document = _within_64_bits(document)
    except msgspec.DecodeError as error:
        raise BadRequest(f"The request body is not valid JSON: {error}.") from None
    except RecursionError:
        raise BadRequest("The request body is nested too deeply.") from None
    finally:
        if isinstance(text, memoryview):
            text.release()
        if isinstance(raw, memoryview):
            raw.release()
    if not isinstance(document, dict):
        raise BadRequest("The request body must be a JSON object.")
    return document


def _within_64_bits(document: Any) -> Any:
    """Integers beyond 64 bits as floats, as every JSON encoder of the gateway takes them
    (orjson writes no larger integer)."""
    if _huge(document):
        return float(document)
    stack = [document]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            if isinstance(value, dict | list):
                stack.append(value)
            elif _huge(value):
                node[key] = float(value)
    return document


def _huge(value: Any) -> bool:
    return type(value) is int and not -(2**63) <= value < 2**64


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
