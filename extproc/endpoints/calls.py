"""The model calls the gateway serves, by path."""

from extproc.endpoints import chat_completions, completions, embeddings, messages
from extproc.endpoints.spec import ModelCall

MODEL_CALLS: dict[str, ModelCall] = {
    endpoint.path: endpoint
    for endpoint in (
        chat_completions.ENDPOINT,
        completions.ENDPOINT,
        embeddings.ENDPOINT,
        messages.ENDPOINT,
    )
}
