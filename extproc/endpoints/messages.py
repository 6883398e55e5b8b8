"""POST /v1/messages (Anthropic Messages API), for aliases on any provider kind."""

from extproc.endpoints.body import check_positive_int, require, require_messages
from extproc.endpoints.spec import ModelCall
from extproc.translators.anthropic import ANTHROPIC
from extproc.translators.ir import JsonObject


def check(body: JsonObject) -> None:
    require_messages(body)
    require(body, "max_tokens", (int,), "an integer of at least 1")
    check_positive_int(body, "max_tokens")


ENDPOINT: ModelCall = ModelCall(
    path="/v1/messages",
    operation="chat",
    schema=ANTHROPIC,
    check=check,
)
