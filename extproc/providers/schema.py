"""Which API schema a provider kind speaks natively."""

from extproc.config import Target
from extproc.endpoints.spec import ApiSchema, ModelCall
from extproc.errors import BadRequest


def require_schema(endpoint: ModelCall, target: Target, schema: ApiSchema) -> None:
    """Refuse a call whose API the target's provider does not speak."""
    if endpoint.schema != schema:
        raise BadRequest(
            f"The model is served by a provider that does not accept {endpoint.path}.",
            param="model",
            code="unsupported_endpoint",
        )
