"""Bedrock error bodies: `{"message": "..."}` (the error's name is in a header, its kind in the
status: 400 validation, 403 access denied, 404 unknown model, 429 throttling, …)."""

from __future__ import annotations

from extproc.errors import ApiError
from extproc.translators.common import error_type_for, parse_json, text_error

CREDENTIALS_REFUSED = (401, 403)


def parse_error(status: int, body: bytes) -> ApiError:
    document = parse_json(body)
    message = None
    if isinstance(document, dict):
        message = document.get("message") or document.get("Message")
    if not isinstance(message, str) or not message:
        return text_error(status, body)
    return ApiError(
        status,
        message,
        error_type_for(status),
        # A signature Bedrock refuses is the gateway's credentials, not the client's.
        credentials_refused=status in CREDENTIALS_REFUSED,
    )
