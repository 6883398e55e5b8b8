"""Who is calling: the gateway key from `Authorization: Bearer`, `api-key` or `x-api-key`."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from extproc.config import Principal
from extproc.errors import Unauthenticated
from extproc.headers import API_KEY, AUTHORIZATION, X_API_KEY

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


def authenticate(headers: RequestHeaders, principals: Mapping[str, Principal]) -> Principal:
    """The principal a request's key belongs to; raises Unauthenticated."""
    principal = principals.get(digest_key(extract_key(headers)))
    if principal is None:
        raise Unauthenticated("Invalid API key.")
    return principal


def _bearer_token(value: str) -> str:
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthenticated("The Authorization header must use the Bearer scheme.")
    return token.strip()
