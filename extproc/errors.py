"""Errors the gateway answers clients with, in OpenAI's shape.

GatewayError                   500 server_error (also the generic answer to anything unexpected)
 ├── BadRequest                400 invalid_request_error
 ├── Unauthenticated           401 invalid_request_error / invalid_api_key
 ├── PermissionDenied          403 permission_error
 ├── NotFound                  404 invalid_request_error
 ├── MethodNotAllowed          405 invalid_request_error
 ├── PayloadTooLarge           413 invalid_request_error
 ├── UnsupportedMediaType      415 invalid_request_error
 ├── RateLimited               429 rate_limit_exceeded (requests, tokens, concurrency)
 ├── QuotaExhausted            429 insufficient_quota (money budgets)
 ├── BadGateway                502 upstream_error (a provider answer the gateway cannot use)
 ├── ServiceUnavailable        503 service_unavailable
 └── GatewayTimeout            504 timeout

Only these classes reach a client; their messages never contain keys or exception text.
A client of another schema (Anthropic's Messages API) gets the same error in its own shape
(`api_error()` is the neutral form the translators write).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import orjson


@dataclass(frozen=True, slots=True)
class ApiError:
    """An error answer. `type` uses OpenAI's vocabulary (the gateway's own errors are
    OpenAI-typed); each schema maps it to its own words."""

    status: int
    message: str
    type: str
    code: str | int | None = None
    param: str | None = None
    credentials_refused: bool = False
    """The provider refused the gateway's credentials: the operator's problem, not the
    client's (reported as 502 `provider_auth_failed`)."""


class GatewayError(Exception):
    """An error with an HTTP status and an OpenAI-style body."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None
    default_headers: ClassVar[tuple[tuple[str, str], ...]] = ()

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.headers = self.default_headers + tuple(headers)
        """Response headers that go with the error (`retry-after`, rate limit state)."""
        self.labels: dict[str, str] = {}
        """Details for telemetry only (which quota scope refused), never sent to clients."""

    def to_body(self) -> bytes:
        """The OpenAI-shaped body."""
        return openai_error_body(self.api_error())

    def api_error(self) -> ApiError:
        return ApiError(self.status, self.message, self.type, self.code, self.param)


def openai_error_body(error: ApiError) -> bytes:
    """`{"error": {"message", "type", "param", "code"}}`, OpenAI's error shape."""
    body = {"message": error.message, "type": error.type, "param": error.param, "code": error.code}
    return orjson.dumps({"error": body})


class BadRequest(GatewayError):
    """The request is malformed or asks for something invalid."""

    status = 400
    type = "invalid_request_error"


class Unauthenticated(GatewayError):
    """No gateway key, or one the gateway does not know."""

    status = 401
    type = "invalid_request_error"
    default_code = "invalid_api_key"
    default_headers = (("www-authenticate", "Bearer"),)


class PermissionDenied(GatewayError):
    """The key is valid but may not use what it asked for."""

    status = 403
    type = "permission_error"


class NotFound(GatewayError):
    """No such model or API path."""

    status = 404
    type = "invalid_request_error"


class MethodNotAllowed(GatewayError):
    """The path exists but not for this HTTP method."""

    status = 405
    type = "invalid_request_error"
    default_code = "method_not_allowed"


class PayloadTooLarge(GatewayError):
    """The body is over the configured limit."""

    status = 413
    type = "invalid_request_error"
    default_code = "request_too_large"


class UnsupportedMediaType(GatewayError):
    """The body is encoded in a way the gateway does not decode."""

    status = 415
    type = "invalid_request_error"
    default_code = "unsupported_content_encoding"


class RateLimited(GatewayError):
    """A request, token or concurrency limit is reached; retrying later helps."""

    status = 429
    type = "rate_limit_exceeded"
    default_code = "rate_limit_exceeded"


class QuotaExhausted(GatewayError):
    """A money budget is spent; OpenAI's spelling for an exhausted plan."""

    status = 429
    type = "insufficient_quota"
    default_code = "insufficient_quota"


class BadGateway(GatewayError):
    """The provider's answer cannot be used (nor translated for the client)."""

    status = 502
    type = "upstream_error"


class ServiceUnavailable(GatewayError):
    """The gateway cannot serve the request right now."""

    status = 503
    type = "service_unavailable"


class GatewayTimeout(GatewayError):
    """The processor or the provider did not answer in time."""

    status = 504
    type = "timeout"
    default_code = "gateway_timeout"


ECHO_LIMIT = 120


def shorten(text: str) -> str:
    """Client-sent text as echoed in an error message: bounded in length."""
    return text if len(text) <= ECHO_LIMIT else text[:ECHO_LIMIT] + "…"


INTERNAL_ERROR = GatewayError("The gateway failed to process the request.", code="internal_error")
