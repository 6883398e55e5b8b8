"""POST /v1/chat/completions (OpenAI schema)."""

from extproc.endpoints.body import check_positive_int, require
from extproc.endpoints.spec import JsonObject, ModelCall
from extproc.errors import BadRequest

MAX_CHOICES = 128


def check(body: JsonObject) -> None:
    messages = require(body, "messages", (list,), "a non-empty array of messages")
    if not all(isinstance(message, dict) for message in messages):
        raise BadRequest("Every entry of 'messages' must be an object.", param="messages")
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
