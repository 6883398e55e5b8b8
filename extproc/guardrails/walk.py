"""The texts of a request body in any client schema: every string a person or a model wrote
(messages, system prompts, tool-call arguments, tool results), not the ones that name, link
or encode (ids, roles, signatures, base64 data, the tools' own definitions)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

NOT_TEXT = frozenset(
    {
        "model",
        "role",
        "type",
        "id",
        "object",
        "name",
        "tool_call_id",
        "tool_use_id",
        "call_id",
        "previous_response_id",
        "signature",
        "encrypted_content",
        "data",
        "file_data",
        "file_id",
        "b64_json",
        "media_type",
        "mime_type",
        "detail",
        "format",
        "cache_control",
        "tools",
        "tool_choice",
        "response_format",
        "text_format",
        "stream_options",
        "service_tier",
        "reasoning_effort",
        "status",
        "finish_reason",
        "stop_reason",
        "system_fingerprint",
    }
)
"""Keys whose values are not text anyone wrote (`tools`: the application's definitions)."""


def rewrite_texts(value: Any, change: Callable[[str], str]) -> Any:
    """`value` with every text passed through `change` (the same objects where nothing
    changed)."""
    if isinstance(value, str):
        return value if value.startswith("data:") else change(value)
    if isinstance(value, list):
        items = [rewrite_texts(item, change) for item in value]
        same = all(new is old for new, old in zip(items, value, strict=True))
        return value if same else items
    if isinstance(value, dict):
        changed = {
            key: item if key in NOT_TEXT else rewrite_texts(item, change)
            for key, item in value.items()
        }
        same = all(changed[key] is item for key, item in value.items())
        return value if same else changed
    return value


def texts_of(value: Any) -> list[str]:
    """Every text in `value`, in document order."""
    found: list[str] = []

    def note(text: str) -> str:
        found.append(text)
        return text

    rewrite_texts(value, note)
    return found
