"""How the gateway talks to one kind of provider: its wire schema, where each call goes and
which credential headers go with it. Plain values; nothing here knows Envoy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from extproc.config import Target
from extproc.translators.schema import Operation, WireSchema


@dataclass(frozen=True, slots=True)
class Location:
    path: str
    """The upstream path, query included."""
    headers: tuple[tuple[str, str], ...]
    """Headers to set (overwriting any client copy): the credential and its companions."""


@dataclass(frozen=True, slots=True)
class ProviderApi:
    schema: WireSchema
    locate: Callable[[Operation, Target, bool], Location]
    """(operation, target, streamed) → where the call goes."""
    otel_name: str
    """The `gen_ai.provider.name` of this kind of provider."""
