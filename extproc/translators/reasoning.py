"""Thinking across schemas: which models take a reasoning control, how a budget and an effort
stand for each other, and the signature that marks thinking the gateway relayed.

A client's thinking request reaches a translated call as an effort and, where the client set
one, a budget; each provider schema writes its own control from them. A model that has no
reasoning control gets none (`map`), unless the alias says otherwise.
"""

from __future__ import annotations

import base64
import re
from dataclasses import replace

import orjson

from extproc.config.model import ReasoningPolicy
from extproc.translators.common import merge_turns, untranslatable
from extproc.translators.ir import ChatRequest, Part, Reasoning, ReasoningEffort

_REASONING_MODELS: dict[str, re.Pattern[str]] = {
    "openai": re.compile(r"^(o\d|gpt-5|gpt-oss|codex)"),
    "gemini": re.compile(r"^gemini-(2\.5|[3-9])|^gemini-(flash|pro)(-lite)?-latest"),
    "bedrock": re.compile(r"anthropic\.claude-(3-7|(sonnet|opus|haiku)-[4-9])"),
}
"""Model families with a reasoning control, by the upstream model's name; Azure deployments
and Vertex's Gemini models are named like OpenAI's and Google's."""
_SAME_NAMES = {"azure": "openai", "vertex": "gemini"}

BUDGET_FOR_EFFORT: dict[ReasoningEffort, int] = {
    "none": 0,
    "minimal": 0,
    "low": 1024,
    "medium": 8192,
    "high": 24576,
    "xhigh": 32768,
}
"""A thinking budget (tokens) for each of OpenAI's reasoning efforts."""


def takes_reasoning(provider_kind: str, model: str) -> bool:
    pattern = _REASONING_MODELS.get(_SAME_NAMES.get(provider_kind, provider_kind))
    return pattern is not None and pattern.search(model) is not None


def fit_reasoning(
    request: ChatRequest, provider_kind: str, model: str, policy: ReasoningPolicy
) -> ChatRequest:
    """The request as the target model may take it: earlier turns' thinking only where this
    kind of provider wrote and signed it, and the thinking request kept where the policy and
    the model allow, else removed (or refused, under `refuse`)."""
    request = _without_foreign_thinking(request, provider_kind)
    if request.reasoning_effort is None and request.reasoning_budget is None:
        return request
    keep = policy == "always" or (policy == "map" and takes_reasoning(provider_kind, model))
    if keep:
        return request
    if policy == "refuse":
        raise untranslatable(request.param("reasoning_effort"), provider_kind, "thinking")
    return replace(request, reasoning_effort=None, reasoning_budget=None, reasoning_shown=False)


def _without_foreign_thinking(request: ChatRequest, provider_kind: str) -> ChatRequest:
    def own(part: Part) -> bool:
        return not isinstance(part, Reasoning) or (
            part.origin == provider_kind and part.signature is not None
        )

    if all(own(part) for message in request.messages for part in message.parts):
        return request
    turns = [(m.role, [part for part in m.parts if own(part)]) for m in request.messages]
    return replace(request, messages=merge_turns(turns))


def thinking_budget(request: ChatRequest) -> int | None:
    """The budget the client set, else the one its effort stands for; None: no control."""
    if request.reasoning_budget is not None:
        return request.reasoning_budget
    if request.reasoning_effort is None:
        return None
    return BUDGET_FOR_EFFORT[request.reasoning_effort]


def reasoning_effort(request: ChatRequest) -> ReasoningEffort | None:
    """The effort the client set, else the one nearest its budget."""
    if request.reasoning_effort is not None or request.reasoning_budget is None:
        return request.reasoning_effort
    budget = request.reasoning_budget
    return "low" if budget < 4096 else "medium" if budget < 16384 else "high"


# Thinking the gateway relays to an Anthropic client carries a signature of its own: the
# client sends it back with later turns, and the gateway then knows which provider wrote it
# (and that provider's own signature, if any) and that Anthropic must never see it.

_SIGNATURE_PREFIX = "extproc.thinking."


def sign(part: Reasoning, *, with_text: bool = False) -> str:
    """The gateway's signature of thinking a provider other than Anthropic wrote; `with_text`
    when the client is not shown the text (`display: omitted`) but its provider needs it back."""
    fields = {"origin": part.origin, "signature": part.signature}
    if with_text:
        fields["text"] = part.text
    return _SIGNATURE_PREFIX + base64.urlsafe_b64encode(orjson.dumps(fields)).decode()


def read_signature(text: str, signature: str) -> Reasoning:
    """Thinking an Anthropic client sent back: the gateway's (with its origin) or
    Anthropic's own."""
    if not signature.startswith(_SIGNATURE_PREFIX):
        return Reasoning(text, signature, "anthropic")
    try:
        fields = orjson.loads(base64.urlsafe_b64decode(signature[len(_SIGNATURE_PREFIX) :]))
    except (ValueError, orjson.JSONDecodeError):
        return Reasoning(text)
    origin, own, hidden = fields.get("origin"), fields.get("signature"), fields.get("text")
    return Reasoning(
        hidden if isinstance(hidden, str) and not text else text,
        own if isinstance(own, str) else None,
        origin if isinstance(origin, str) else None,
    )


def is_gateway_signature(signature: object) -> bool:
    return isinstance(signature, str) and signature.startswith(_SIGNATURE_PREFIX)
