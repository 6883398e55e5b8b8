"""Who is calling: the gateway key from `Authorization: Bearer`, `api-key` or `x-api-key`."""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Mapping

from extproc.config import Principal
from extproc.errors import Unauthenticated
from extproc.headers import API_KEY, AUTHORIZATION, KEY_EXPIRES_AT, X_API_KEY

RequestHeaders = Mapping[str, list[str]]
"""Lower-case header name → every value the client sent for it."""

MAX_KEY_LENGTH = 512


def digest_key(key: str) -> str:
    """The SHA-256 hex digest under which a gateway key is stored."""
    return hashlib.sha256(key.encode()).hexdigest()


def extract_key(headers: RequestHeaders) -> str:
    """The one gateway key the client sent; several different ones are refused."""
    candidates = {_bearer_token(value) for value in headers.get(AUTHORIZATION, ())}
    for name in (API_KEY, X_API_KEY):
        candidates.update(value.strip() for value in headers.get(name, ()))
    candidates.discard("")
    if not candidates:
        raise Unauthenticated(
            "Missing API key: send the gateway key as 'Authorization: Bearer <key>', "
            "'api-key' or 'x-api-key'."
        )
    if len(candidates) > 1:
        raise Unauthenticated("Several different API keys were sent; send exactly one.")
    key = candidates.pop()
    if len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise Unauthenticated("Invalid API key.")
    return key


def authenticate(
    headers: RequestHeaders, principals: Mapping[str, Principal], now: float
) -> Principal:
    """The principal a request's key belongs to, if it is valid at `now` (Unix time);
    raises Unauthenticated."""
    principal = principals.get(digest_key(extract_key(headers)))
    if principal is None:
        raise Unauthenticated("Invalid API key.")
    if principal.expires_at is not None and now >= principal.expires_at:
        raise Unauthenticated(
            f"This API key expired at {instant(principal.expires_at)}; use its replacement.",
            code="key_expired",
        )
    if principal.not_before is not None and now < principal.not_before:
        raise Unauthenticated(
            f"This API key is not valid before {instant(principal.not_before)}.",
            code="key_not_yet_valid",
        )
    return principal


def expiry_notice(principal: Principal, now: float, notice: float) -> list[tuple[str, str]]:
    """`x-extproc-key-expires-at` when the key expires within `notice` seconds: a client
    (or whoever reads its logs) learns of it before its calls start failing."""
    expires_at = principal.expires_at
    if expires_at is None or expires_at - now > notice:
        return []
    return [(KEY_EXPIRES_AT, instant(expires_at))]


def instant(timestamp: float) -> str:
    """RFC 3339 in UTC, to the second: `2026-12-12T00:00:00Z`."""
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


def _bearer_token(value: str) -> str:
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthenticated("The Authorization header must use the Bearer scheme.")
    return token.strip()
