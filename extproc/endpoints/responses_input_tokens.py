"""POST /v1/responses/input_tokens (OpenAI): the input tokens a response would use."""

from extproc.endpoints.responses import check_input
from extproc.endpoints.spec import TokenCount
from extproc.translators.responses import RESPONSES

ENDPOINT: TokenCount = TokenCount(
    path="/v1/responses/input_tokens",
    operation="chat",
    schema=RESPONSES,
    check=check_input,
    estimate_answer=lambda tokens: {"object": "response.input_tokens", "input_tokens": tokens},
)
