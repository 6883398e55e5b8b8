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


Credentials = tuple[tuple[str, str], ...]
RESPONSES_API = "/v1/responses"
RESPONSES_INPUT_TOKENS = RESPONSES_API + "/input_tokens"


def in_responses_api(path: str, target: Target) -> bool:
    """Whether a gateway path belongs to OpenAI's Responses API (creating, counting, reading
    and deleting responses) and the target's provider serves that API."""
    inside = path == RESPONSES_API or path.startswith(RESPONSES_API + "/")
    return inside and target.provider.responses_api


@dataclass(frozen=True, slots=True)
class ProviderApi:
    schema: WireSchema
    credentials: Callable[[Target], Credentials]
    """The headers that authenticate a request to the target's provider (and their
    companions, such as Anthropic's API version)."""
    locate: Callable[[Operation, Target, bool], Location]
    """(operation, target, streamed) → where a call in this kind's schema goes."""
    otel_name: str
    """The `gen_ai.provider.name` of this kind of provider."""
    locate_native: Callable[[str, Target], Location | None] = lambda path, target: None
    sign: Callable[[Target, str, bytes], Credentials] | None = None
    """(target, upstream path, the exact body sent) → the headers that sign this request,
    for kinds that sign each request (AWS SigV4) rather than send a key."""
    feature_headers: frozenset[str] = frozenset()
    """Headers a client of this kind's own schema may send to turn features on (betas):
    passed on only when the client speaks that schema."""
    request_id_header: str | None = None
    """Where this kind's answers carry the provider's id for the call."""

    def signature(self, target: Target, path: str, body: bytes) -> Credentials:
        """The headers signing this request, for kinds that sign each one (else none)."""
        return () if self.sign is None else self.sign(target, path, body)

    """(gateway path, target) → where a request to that path goes when the target's provider
    serves it as it is, beside its schema's calls (Anthropic's token counts, OpenAI's
    Responses API); None when it does not."""
