"""The names Envoy's configuration and the processor must agree on: what the rendered
bootstrap asks Envoy to send or write, and what the processor reads or answers. Both sides
import them from here, so that serving needs none of the renderer (or its Envoy API
library) and a name cannot drift between the two."""

from __future__ import annotations

REPLY_DETAILS = "extproc_"
"""Prefix of the response code details of every local reply the processor sends."""

SHARED_METADATA = "extproc"
"""The dynamic-metadata namespace the request's own stream writes and each attempt's stream
reads: what one passes the other without a header a provider would see."""
JWT_METADATA = "envoy.filters.http.jwt_authn"
"""The namespace Envoy's `jwt_authn` filter writes verified claims (and failures) under."""
JWT_FAILURE = "failure"
"""Where in it Envoy writes why it refused a token (`failed_status_in_metadata`)."""
EXT_AUTHZ_METADATA = "envoy.filters.http.ext_authz"
"""The namespace Envoy's `ext_authz` filter writes an authorization service's metadata under."""
IDENTITY_METADATA = (JWT_METADATA, EXT_AUTHZ_METADATA)

ENDPOINT_METADATA = "extproc"
"""The namespace of a fallback target's endpoint metadata: `target` is its index in its
alias."""
TARGET_ATTRIBUTE = f"xds.upstream_host_metadata.filter_metadata['{ENDPOINT_METADATA}']['target']"
"""The ext_proc attribute (a CEL expression) naming the target an attempt goes to."""
CLUSTER_ATTRIBUTE = "xds.cluster_name"
PATH_ATTRIBUTE = "request.path"
METHOD_ATTRIBUTE = "request.method"
"""The client's request line: an attempt's own headers carry what earlier attempts changed
(Envoy retries with the header map the upstream filters mutated)."""
ATTEMPT_ATTRIBUTES = (TARGET_ATTRIBUTE, CLUSTER_ATTRIBUTE, PATH_ATTRIBUTE, METHOD_ATTRIBUTE)
"""What Envoy sends with each attempt of a call to an alias with fallback."""
ATTEMPT_TARGET_TAG = "target"
"""The custom tag of Envoy's access-log entry for an attempt: its endpoint's `target`."""
ALIAS_CLUSTER_PREFIX = "alias_"


def route_value(alias: str, start: int) -> str:
    """The routing header's value for an alias with fallback, starting at its `start`th
    priority level (`=` is in no provider name)."""
    return f"alias={alias}.{start}"


def alias_cluster(alias: str, start: int) -> str:
    """The cluster of an alias's attempts from its `start`th priority level on."""
    return f"{ALIAS_CLUSTER_PREFIX}{alias}.{start}"


def alias_of(cluster: str) -> str:
    """The alias a fallback cluster serves."""
    return cluster.removeprefix(ALIAS_CLUSTER_PREFIX).rpartition(".")[0]


CLIENT_PATH_FIELD = "path"
"""In `SHARED_METADATA`: the path the client called. An attempt's `request.path` is what an
earlier attempt rewrote it to (a provider's own path), not the endpoint the body is for."""
CLIENT_BODY_FIELD = "body"
"""In `SHARED_METADATA`, when the request's stream prepared the request for one target: the
client's body (JSON), which an attempt to another target is prepared from."""
HELD_HEADERS_FIELD = "headers"
"""In `SHARED_METADATA`, likewise: the client's headers that target may not get but another
may (a JSON object of name and value)."""

MCP_PREFIX = "/mcp/"
"""Paths of MCP servers behind the gateway: `/mcp/<name>`. Envoy's own error replies there are
JSON-RPC errors."""
