"""POST /v1/embeddings (OpenAI schema)."""

from extproc.endpoints.body import check_positive_int, require
from extproc.endpoints.spec import ModelCall
from extproc.translators.ir import JsonObject
from extproc.translators.openai import OPENAI


def check(body: JsonObject) -> None:
    require(body, "input", (str, list), "a non-empty string or array")
    check_positive_int(body, "dimensions")


ENDPOINT: ModelCall = ModelCall(
    path="/v1/embeddings",
    operation="embeddings",
    schema=OPENAI,
    check=check,
)
