"""Screening a call: its request body before anything goes upstream, its JSON answer before
the client gets it."""

from __future__ import annotations

from dataclasses import replace

from extproc.errors import BadRequest
from extproc.guardrails.policy import Decision, Screen, Verdicts
from extproc.guardrails.walk import rewrite_texts, texts_of
from extproc.translators.ir import ChatAnswer, JsonObject, Reasoning, Text, ToolCall

BLOCKED = "guardrail_blocked"


def blocked_error(decision: Decision) -> BadRequest:
    """What the client is told: the policy and the detector, never the text that matched."""
    what = "request" if decision.direction == "input" else "answer"
    return BadRequest(
        f"The {what} was blocked by guardrail policy {decision.policy!r} "
        f"(detector: {decision.detector}).",
        code=BLOCKED,
    )


async def screen_request(screen: Screen, body: JsonObject) -> tuple[JsonObject, Verdicts]:
    """The body as it may go upstream (masked where a policy masks), and the decisions."""
    verdicts = Verdicts()
    screened = rewrite_texts(body, lambda text: screen.apply(text, verdicts))
    if screen.external and verdicts.blocked is None:
        await screen.judge_externally(texts_of(screened), verdicts)
    return screened, verdicts


async def screen_answer(screen: Screen, answer: ChatAnswer) -> tuple[ChatAnswer, Verdicts]:
    """The answer as the client may see it: masked, or a refusal when a policy blocks it
    (with the provider's usage, which the call is charged)."""
    verdicts = Verdicts()
    parts: list[Text | ToolCall | Reasoning] = []
    for part in answer.parts:
        if isinstance(part, ToolCall):
            arguments = rewrite_texts(part.arguments, lambda text: screen.apply(text, verdicts))
            parts.append(replace(part, arguments=arguments))
        else:
            parts.append(replace(part, text=screen.apply(part.text, verdicts)))
    if screen.external and verdicts.blocked is None:
        texts = [part.text for part in parts if isinstance(part, Text)]
        texts += [
            text
            for part in parts
            if isinstance(part, ToolCall)
            for text in texts_of(part.arguments)
        ]
        await screen.judge_externally(texts, verdicts)
    if verdicts.blocked is not None:
        refusal = Text(blocked_error(verdicts.blocked).message)
        return replace(
            answer, parts=(refusal,), stop="content_filter", stop_sequence=None
        ), verdicts
    return replace(answer, parts=tuple(parts)), verdicts
