"""What goes upstream for a model call: the target provider's API, the call's translation
between the client's schema and the provider's, and the body in the provider's schema."""

from __future__ import annotations

from dataclasses import dataclass

from extproc.config import Target
from extproc.endpoints.spec import ModelCall
from extproc.providers import Location, ProviderApi, provider_api
from extproc.translators.ir import JsonObject
from extproc.translators.translation import Translation, translate_request


@dataclass(frozen=True, slots=True)
class Upstream:
    api: ProviderApi
    translation: Translation
    body: JsonObject
    location: Location


def prepare_upstream(
    call: ModelCall,
    target: Target,
    body: JsonObject,
    *,
    default_max_tokens: int,
    neutral: bool = False,
) -> Upstream:
    """`default_max_tokens`: the output cap for providers that require one when the client
    sets none; `neutral`: the call's answer is screened, so it is read in the neutral form
    even where the call passes through."""
    provider = target.provider
    api = provider_api(provider)
    # A provider that serves the client's API as it is gets the call in the client's schema,
    # unless the target forces options: those are written in the provider's own schema.
    native = None if target.options else api.locate_native(call.path, target)
    translation, upstream_body = translate_request(
        call.schema,
        api.schema if native is None else call.schema,
        call.operation,
        body,
        model=target.model,
        provider_kind=provider.kind,
        options=target.options,
        default_max_tokens=default_max_tokens,
        stream_usage=provider.stream_usage,
        reasoning=target.reasoning,
        neutral=neutral,
    )
    location = native or api.locate(call.operation, target, translation.stream)
    return Upstream(api, translation, upstream_body, location)
