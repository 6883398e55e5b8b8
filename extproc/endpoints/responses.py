"""POST /v1/responses (OpenAI Responses API), for aliases on any provider kind."""

from extproc.endpoints.body import check_positive_int
from extproc.endpoints.spec import ModelCall
from extproc.errors import BadRequest
from extproc.translators.ir import JsonObject
from extproc.translators.responses import RESPONSES


def check_input(body: JsonObject) -> None:
    """`input`: a string or a non-empty array of items (or none, after a stored response)."""
    value = body.get("input")
    if value is None:
        if body.get("previous_response_id") is None and body.get("prompt") is None:
            raise BadRequest("Missing required parameter: 'input'.", param="input")
        return
    if isinstance(value, list):
        if not value or not all(isinstance(item, dict) for item in value):
            raise BadRequest(
                "'input' must be a string or a non-empty array of items.", param="input"
            )
    elif not isinstance(value, str):
        raise BadRequest("'input' must be a string or an array of items.", param="input")


def check(body: JsonObject) -> None:
    check_input(body)
    check_positive_int(body, "max_output_tokens")


ENDPOINT: ModelCall = ModelCall(
    path="/v1/responses",
    operation="chat",
    schema=RESPONSES,
    check=check,
)
