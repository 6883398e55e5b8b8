"""POST /v1/messages/count_tokens (Anthropic): the input tokens a message would use."""

from extproc.endpoints.body import require_messages
from extproc.endpoints.spec import TokenCount
from extproc.errors import BadRequest
from extproc.translators.anthropic import ANTHROPIC
from extproc.translators.ir import JsonObject


def check(body: JsonObject) -> None:
    require_messages(body)
    if "max_tokens" in body:
        raise BadRequest("max_tokens: Extra inputs are not permitted.", param="max_tokens")


ENDPOINT: TokenCount = TokenCount(
    path="/v1/messages/count_tokens",
    operation="chat",
    schema=ANTHROPIC,
    check=check,
    estimate_answer=lambda tokens: {"input_tokens": tokens},
)
