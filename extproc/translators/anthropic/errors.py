"""Anthropic error bodies: `{"type": "error", "error": {"type", "message"}}`, typed by status
(`invalid_request_error`, `authentication_error`, `rate_limit_error`, `overloaded_error`, …)."""

from __future__ import annotations

from typing import Any

import orjson

from extproc.errors import ApiError
from extproc.translators.common import parse_json, text_error
from extproc.translators.ir import JsonObject

_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_AS_OPENAI = {
    "not_found_error": "invalid_request_error",
    "request_too_large": "invalid_request_error",
    "rate_limit_error": "rate_limit_exceeded",
    "billing_error": "insufficient_quota",
    "api_error": "server_error",
    "overloaded_error": "server_error",
    "timeout_error": "timeout",
}
"""Anthropic's error types in OpenAI's words (the neutral vocabulary); the others are the
same words in both."""
CREDENTIALS_REFUSED = (401, 403)


def anthropic_type(status: int) -> str:
    return _BY_STATUS.get(status, "invalid_request_error" if status < 500 else "api_error")


def parse_error(status: int, body: bytes) -> ApiError:
    document = parse_json(body)
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, dict):
        parsed = text_error(status, body)
    else:
        parsed = error_from_object(error, status)
    if status in CREDENTIALS_REFUSED:
        return ApiError(parsed.status, parsed.message, parsed.type, credentials_refused=True)
    return parsed


def error_from_object(error: JsonObject, status: int) -> ApiError:
    kind = error.get("type")
    kind = kind if isinstance(kind, str) else anthropic_type(status)
    message = error.get("message")
    return ApiError(
        status,
        message if isinstance(message, str) and message else f"The provider answered {status}.",
        _AS_OPENAI.get(kind, kind),
        code=kind,
    )


def error_object(error: ApiError) -> JsonObject:
    return {
        "type": "error",
        "error": {"type": anthropic_type(error.status), "message": error.message},
    }


def build_error(error: ApiError) -> bytes:
    return orjson.dumps(error_object(error))


def is_native_error(body: bytes) -> bool:
    document: Any = parse_json(body)
    error = document.get("error") if isinstance(document, dict) else None
    return (
        (
            document.get("type") == "error"
            and isinstance(error, dict)
            and isinstance(error.get("type"), str)
            and isinstance(error.get("message"), str)
        )
        if isinstance(document, dict)
        else False
    )
