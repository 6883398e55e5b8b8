"""Gemini error bodies: `{"error": {"code", "message", "status", "details"}}` with Google's
canonical status names. A key Gemini does not accept is a 400 `INVALID_ARGUMENT` whose details
say `API_KEY_INVALID`: that is the gateway's credentials being refused, like a 401 elsewhere."""

from __future__ import annotations

from extproc.errors import ApiError
from extproc.translators.common import error_type_for, parse_json, text_error
from extproc.translators.ir import JsonObject

_TYPES = {
    "INVALID_ARGUMENT": "invalid_request_error",
    "FAILED_PRECONDITION": "invalid_request_error",
    "OUT_OF_RANGE": "invalid_request_error",
    "NOT_FOUND": "invalid_request_error",
    "UNAUTHENTICATED": "authentication_error",
    "PERMISSION_DENIED": "permission_error",
    "RESOURCE_EXHAUSTED": "rate_limit_exceeded",
    "DEADLINE_EXCEEDED": "timeout",
}
_KEY_REFUSED = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED"})
CREDENTIALS_REFUSED = (401, 403)


def parse_error(status: int, body: bytes) -> ApiError:
    document = parse_json(body)
    if isinstance(document, list) and document:  # the non-SSE stream answers in an array
        document = document[0]
    error = document.get("error") if isinstance(document, dict) else None
    return error_from_object(error, status) if isinstance(error, dict) else text_error(status, body)


def error_from_object(error: JsonObject, status: int) -> ApiError:
    message, name = error.get("message"), error.get("status")
    reasons = {
        detail.get("reason") for detail in error.get("details") or () if isinstance(detail, dict)
    }
    return ApiError(
        status,
        message if isinstance(message, str) and message else f"The provider answered {status}.",
        _TYPES.get(name, error_type_for(status))
        if isinstance(name, str)
        else error_type_for(status),
        code=name if isinstance(name, str) else None,
        credentials_refused=status in CREDENTIALS_REFUSED or bool(reasons & _KEY_REFUSED),
    )
