"""POST /v1/chat/completions (OpenAI schema), for aliases on any provider kind."""

from extproc.endpoints.body import MAX_CHOICES, check_positive_int, require_messages
from extproc.endpoints.spec import ModelCall
from extproc.translators.ir import JsonObject
from extproc.translators.openai import OPENAI


def check(body: JsonObject) -> None:
    require_messages(body)
    check_positive_int(body, "max_tokens")
    check_positive_int(body, "max_completion_tokens")
    check_positive_int(body, "n", maximum=MAX_CHOICES)


ENDPOINT: ModelCall = ModelCall(
    path="/v1/chat/completions",
    operation="chat",
    schema=OPENAI,
    check=check,
)
