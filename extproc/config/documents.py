"""Reading YAML documents strictly, and saying what is wrong with one in a few words."""

from __future__ import annotations

from typing import Any

import yaml

PYDANTIC_MESSAGES = {
    "extra_forbidden": "unknown field",
    "missing": "required field is missing",
    "timezone_aware": "must give its offset (2026-12-05T00:00:00Z, or +01:00)",
}


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys instead of keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(text: str) -> Any:
    """The document in `text`; raises yaml.YAMLError (duplicate keys included)."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def describe(item: Any) -> tuple[str, str]:
    path = ".".join(str(part) for part in item["loc"])
    message = PYDANTIC_MESSAGES.get(item["type"], item["msg"].removeprefix("Value error, "))
    return path, message
