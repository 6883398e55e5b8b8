"""What a provider translator returns: the upstream request, as plain values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from extproc.config import Target
from extproc.endpoints.spec import JsonObject, ModelCall


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    path: str
    headers: tuple[tuple[str, str], ...]
    """Headers to set (overwriting any client copy): the provider credential and its companions."""
    body: JsonObject


class Translator(Protocol):
    def __call__(self, endpoint: ModelCall, target: Target, body: JsonObject) -> UpstreamRequest:
        """Rewrite a client request for the target's provider; raises BadRequest if it cannot."""
        ...


def with_target(target: Target, body: JsonObject) -> JsonObject:
    """The body with the upstream model name and the target's forced options."""
    return body | dict(target.options) | {"model": target.model}
