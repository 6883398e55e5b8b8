"""One module per API path; this registry maps (method, path) to its endpoint."""

from __future__ import annotations

from extproc.contract import MCP_PREFIX
from extproc.endpoints import models, stored_responses
from extproc.endpoints.calls import MODEL_CALLS
from extproc.endpoints.spec import (
    Endpoint,
    LocalAnswer,
    McpEndpoint,
    ModelCall,
    PostCall,
    StoredResponse,
    TokenCount,
)
from extproc.errors import MethodNotAllowed, NotFound, shorten


def match_endpoint(method: str, path: str) -> Endpoint:
    """The endpoint for a request line; 404 for unknown paths, 405 for a wrong method."""
    path = path.partition("?")[0]
    if path in MODEL_CALLS:
        _expect(method, ("POST",), path)
        return MODEL_CALLS[path]
    if path == models.PATH or path.startswith(models.PATH + "/"):
        _expect(method, ("GET",), path)
        return models.ENDPOINT
    if path.startswith(MCP_PREFIX) and "/" not in path[len(MCP_PREFIX) :]:
        _expect(method, ("POST", "GET", "DELETE"), path)
        return McpEndpoint(path[len(MCP_PREFIX) :])
    if (allowed := stored_responses.methods(path)) is not None:
        _expect(method, allowed, path)
        return stored_responses.ENDPOINT
    raise NotFound(f"Unknown request URL: {method} {shorten(path)}.", code="unknown_url")


def _expect(method: str, allowed: tuple[str, ...], path: str) -> None:
    if method not in allowed:
        raise MethodNotAllowed(
            f"{shorten(path)} accepts {' or '.join(allowed)} only, not {method}."
        )


__all__ = [
    "MODEL_CALLS",
    "Endpoint",
    "LocalAnswer",
    "McpEndpoint",
    "ModelCall",
    "PostCall",
    "StoredResponse",
    "TokenCount",
    "match_endpoint",
]
