"""OpenAI error bodies: `{"error": {"message", "type", "param", "code"}}`.

OpenAI-compatible servers, Azure and proxies in front of them do not all answer in this shape:
some leave fields out, some answer text or HTML. Reading fills the gaps from the status.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from extproc.errors import ApiError, openai_error_body
from extproc.translators.common import error_type_for, parse_json, text_error
from extproc.translators.ir import JsonObject

CREDENTIALS_REFUSED = (401, 403)


def parse_error(status: int, body: bytes) -> ApiError:
    document = parse_json(body)
    error = document.get("error") if isinstance(document, dict) else None
    parsed = (
        error_from_object(error, status) if isinstance(error, dict) else text_error(status, body)
    )
    if status in CREDENTIALS_REFUSED:
        return ApiError(parsed.status, parsed.message, parsed.type, credentials_refused=True)
    return parsed


def error_from_object(error: JsonObject, status: int) -> ApiError:
    message, kind, code, param = (error.get(name) for name in ("message", "type", "code", "param"))
    return ApiError(
        status,
        message if isinstance(message, str) and message else f"The provider answered {status}.",
        kind if isinstance(kind, str) and kind else error_type_for(status),
        code if isinstance(code, str | int) and not isinstance(code, bool) else None,
        param if isinstance(param, str) else None,
    )


def is_native_error(body: bytes) -> bool:
    document: Any = parse_json(body)
    error = document.get("error") if isinstance(document, dict) else None
    return (
        isinstance(error, dict)
        and isinstance(error.get("message"), str)
        and isinstance(error.get("type"), str)
        and "param" in error
        and "code" in error
    )


build_error: Callable[[ApiError], bytes] = openai_error_body
