"""The mock as Google Cloud Vertex AI and Google's OAuth token endpoint: a service account's
signed JWT is traded for an access token, and Vertex's model paths accept only tokens it
issued (401 otherwise, as Google answers). Claude on Vertex wants Vertex's
`anthropic_version` in the body and no `model` (the path names it)."""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Mapping
from typing import Any

import orjson

from mockprovider.script import MockError

PATH = re.compile(
    r"/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/publishers/"
    r"(?P<publisher>google|anthropic)/models/(?P<model>[^/:]+):(?P<method>\w+)$"
)
ANTHROPIC_VERSION = "vertex-2023-10-16"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
LIFETIME_SECONDS = 3600


def issue_token(form: Mapping[str, str], issued: set[str]) -> tuple[int, dict[str, Any]]:
    """Google's token endpoint for a service account: (status, JSON answer)."""
    if form.get("grant_type") != JWT_BEARER:
        return 400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type"}
    parts = form.get("assertion", "").split(".")
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (IndexError, ValueError, orjson.JSONDecodeError):
        return 400, {"error": "invalid_grant", "error_description": "Invalid JWT"}
    if len(parts) != 3 or "cloud-platform" not in str(claims.get("scope", "")):
        return 400, {"error": "invalid_scope", "error_description": "Invalid OAuth scope"}
    token = "ya29.mock-" + secrets.token_urlsafe(24)
    issued.add(token)
    return 200, {"access_token": token, "expires_in": LIFETIME_SECONDS, "token_type": "Bearer"}


def check_token(headers: Mapping[str, str], issued: set[str]) -> bytes | None:
    """Google's 401 when the bearer token is missing or not one the mock issued."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme == "Bearer" and token in issued:
        return None
    error = {
        "code": 401,
        "message": "Request had invalid authentication credentials. Expected OAuth 2 access "
        "token, login cookie or other valid authentication credential.",
        "status": "UNAUTHENTICATED",
    }
    return orjson.dumps({"error": error})


def claude_body(body: dict[str, Any]) -> dict[str, Any]:
    """The Messages body Vertex forwards to Claude, after Vertex's own checks."""
    if body.get("anthropic_version") != ANTHROPIC_VERSION:
        raise MockError(f"anthropic_version: Input should be '{ANTHROPIC_VERSION}'")
    if "model" in body:
        raise MockError("model: Extra inputs are not permitted")
    return {name: value for name, value in body.items() if name != "anthropic_version"}
