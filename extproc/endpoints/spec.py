"""What an API path is: a model call that goes upstream, or an answer the gateway gives itself."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from extproc.config import Gateway, Principal

ApiSchema = Literal["openai", "anthropic"]
JsonObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ModelCall:
    """A POST whose JSON body names a model; the gateway rewrites it and sends it upstream."""

    path: str
    operation: str
    """The OpenTelemetry GenAI operation name (`chat`, `text_completion`, `embeddings`)."""
    schema: ApiSchema
    check: Callable[[JsonObject], None]
    """Raises BadRequest when the fields this endpoint needs are missing or of the wrong type."""
    suffix: str
    """The path after the API version, as providers that rebuild paths (Azure) need it."""

    @property
    def usage_api(self) -> str:
        """Which body fields hold the input and the output cap (see `extproc.usage`)."""
        return "messages" if self.schema == "anthropic" else self.operation


@dataclass(frozen=True, slots=True)
class LocalAnswer:
    """A GET the gateway answers itself, with a JSON body."""

    answer: Callable[[Gateway, Principal, str], bytes]
    """(gateway, caller, request path) → response body."""


Endpoint = ModelCall | LocalAnswer
