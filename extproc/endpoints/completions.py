"""POST /v1/completions (OpenAI legacy text completions)."""

from extproc.endpoints.body import MAX_CHOICES, check_positive_int, require
from extproc.endpoints.spec import ModelCall
from extproc.translators.ir import JsonObject
from extproc.translators.openai import OPENAI


def check(body: JsonObject) -> None:
    require(body, "prompt", (str, list), "a string or an array")
    check_positive_int(body, "max_tokens")
    check_positive_int(body, "n", maximum=MAX_CHOICES)


ENDPOINT: ModelCall = ModelCall(
    path="/v1/completions",
    operation="text_completion",
    schema=OPENAI,
    check=check,
)
