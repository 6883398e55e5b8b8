"""POST /v1/messages (Anthropic Messages API, passed through to Anthropic providers)."""

from extproc.endpoints.body import check_positive_int, require, require_messages
from extproc.endpoints.spec import JsonObject, ModelCall


def check(body: JsonObject) -> None:
    require_messages(body)
    require(body, "max_tokens", (int,), "an integer of at least 1")
    check_positive_int(body, "max_tokens")


ENDPOINT = ModelCall(
    path="/v1/messages",
    operation="chat",
    schema="anthropic",
    check=check,
    suffix="messages",
)
