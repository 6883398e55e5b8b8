"""Error answers from providers, reshaped so OpenAI clients can read them.

OpenAI-compatible servers, Azure and proxies in front of them do not all answer errors in
OpenAI's shape (`{"error": {"message", "type", "param", "code"}}`): some leave fields out,
some answer plain text or HTML. The gateway fills the gaps and keeps the status, except for
the provider refusing the gateway's own credentials (401/403): that is the gateway's fault,
not the client's, and becomes a 502 that says so without echoing the provider's text.
"""

from __future__ import annotations

from typing import Any

import orjson

from extproc.errors import shorten

PROVIDER_CREDENTIALS_REFUSED = (401, 403)
BAD_GATEWAY = 502

_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_exceeded",
}


def client_status(status: int) -> int:
    """The status the client gets for a provider's error status."""
    return BAD_GATEWAY if status in PROVIDER_CREDENTIALS_REFUSED else status


def openai_error_body(status: int, body: bytes) -> bytes | None:
    """The error body in OpenAI's shape; None when `body` already is."""
    if status in PROVIDER_CREDENTIALS_REFUSED:
        return _error(
            "The provider refused the gateway's credentials; the gateway operator has been "
            "told (see its logs).",
            "upstream_error",
            "provider_auth_failed",
        )
    try:
        document: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        document = None
    error = document.get("error") if isinstance(document, dict) else None
    if isinstance(error, dict):
        if _is_openai_error(error):
            return None
        message = error.get("message")
        kind = error.get("type")
        code = error.get("code")
        return _error(
            message if isinstance(message, str) and message else f"The provider answered {status}.",
            kind if isinstance(kind, str) and kind else _default_type(status),
            code if isinstance(code, str | int) else None,
            error.get("param") if isinstance(error.get("param"), str) else None,
        )
    text = body.decode("utf-8", "replace").strip()
    message = f"The provider answered {status}" + (f": {shorten(text)}" if text else ".")
    return _error(message, _default_type(status), None)


def _is_openai_error(error: dict[str, Any]) -> bool:
    return (
        isinstance(error.get("message"), str)
        and isinstance(error.get("type"), str)
        and "param" in error
        and "code" in error
    )


def _default_type(status: int) -> str:
    return _TYPE_BY_STATUS.get(status, "server_error" if status >= 500 else "upstream_error")


def _error(message: str, kind: str, code: str | int | None, param: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})
