"""POST /v1/chat/completions (OpenAI schema)."""

from extproc.endpoints.body import check_positive_int, require_messages
from extproc.endpoints.spec import JsonObject, ModelCall

MAX_CHOICES = 128


def check(body: JsonObject) -> None:
    require_messages(body)
    check_positive_int(body, "max_tokens")
    check_positive_int(body, "max_completion_tokens")
    check_positive_int(body, "n", maximum=MAX_CHOICES)


ENDPOINT = ModelCall(
    path="/v1/chat/completions",
    operation="chat",
    schema="openai",
    check=check,
    suffix="chat/completions",
)
