"""POST /v1/messages (Anthropic Messages API, passed through to Anthropic providers)."""

from extproc.endpoints.body import check_positive_int, require
from extproc.endpoints.spec import JsonObject, ModelCall
from extproc.errors import BadRequest


def check(body: JsonObject) -> None:
    messages = require(body, "messages", (list,), "a non-empty array of messages")
    if not all(isinstance(message, dict) for message in messages):
        raise BadRequest("Every entry of 'messages' must be an object.", param="messages")
    require(body, "max_tokens", (int,), "an integer of at least 1")
    check_positive_int(body, "max_tokens")


ENDPOINT = ModelCall(
    path="/v1/messages",
    operation="chat",
    schema="anthropic",
    check=check,
    suffix="messages",
)
