"""GET and DELETE /v1/responses/{id}, and GET /v1/responses/{id}/input_items: responses an
OpenAI-kind provider stored, reached through the alias that created them."""

import re

from extproc.endpoints.spec import StoredResponse

PATH = re.compile(r"^/v1/responses/(?P<id>resp_[A-Za-z0-9_-]{1,200})(?P<items>/input_items)?$")
"""OpenAI's ids start with `resp_` (which keeps `/v1/responses/input_tokens` apart)."""


def methods(path: str) -> tuple[str, ...] | None:
    """The methods a stored-response path allows; None when the path is not one."""
    match = PATH.match(path)
    if match is None:
        return None
    return ("GET",) if match["items"] else ("GET", "DELETE")


def response_id(path: str) -> str:
    match = PATH.match(path)
    assert match is not None, "only for paths this endpoint matched"
    return match["id"]


ENDPOINT: StoredResponse = StoredResponse(response_id=response_id)
