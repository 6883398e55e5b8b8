"""The POSTs that name a model, by path: model calls and token counts."""

from extproc.endpoints import (
    chat_completions,
    completions,
    count_tokens,
    embeddings,
    messages,
    responses,
    responses_input_tokens,
)
from extproc.endpoints.spec import PostCall

MODEL_CALLS: dict[str, PostCall] = {
    endpoint.path: endpoint
    for endpoint in (
        chat_completions.ENDPOINT,
        completions.ENDPOINT,
        embeddings.ENDPOINT,
        messages.ENDPOINT,
        responses.ENDPOINT,
        count_tokens.ENDPOINT,
        responses_input_tokens.ENDPOINT,
    )
}
