"""A small JSON Schema subset validator, so manifests are checked against the very schema file
that documents them (``manifests/manifest.schema.json``) without a jsonschema dependency.

Supported keywords: type, enum, const, properties, required, additionalProperties, items,
minimum, maximum, exclusiveMinimum, minItems, minLength, pattern, anyOf, $ref (local).
The first problem found is reported as (field path, what was expected, what was found).
"""

from __future__ import annotations

import re
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "boolean": (bool,),
    "null": (type(None),),
    "number": (int, float),
    "integer": (int,),
}


class SchemaViolation(Exception):
    def __init__(self, path: str, expected: str, found: Any) -> None:
        super().__init__(f"{path or '<root>'}: expected {expected}, found {_show(found)}")
        self.path = path or "<root>"
        self.expected = expected
        self.found = found


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_type(value: Any, name: str) -> bool:
    if name in ("number", "integer") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[name])


def validate(value: Any, schema: dict[str, Any], root: dict[str, Any] | None = None, path: str = "") -> None:
    """Raise ``SchemaViolation`` for the first place ``value`` breaks ``schema``."""
    root = root or schema
    if "$ref" in schema:
        ref = schema["$ref"]
        target: Any = root
        for part in ref.lstrip("#/").split("/"):
            target = target[part]
        validate(value, target, root, path)
        return
    if "anyOf" in schema:
        for option in schema["anyOf"]:
            try:
                validate(value, option, root, path)
                break
            except SchemaViolation:
                continue
        else:
            raise SchemaViolation(path, schema.get("description") or _describe_any(schema["anyOf"]), value)
    expected_type = schema.get("type")
    if expected_type is not None:
        names = expected_type if isinstance(expected_type, list) else [expected_type]
        if not any(_is_type(value, name) for name in names):
            raise SchemaViolation(path, " or ".join(names), value)
    if "const" in schema and value != schema["const"]:
        raise SchemaViolation(path, repr(schema["const"]), value)
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaViolation(path, "one of " + ", ".join(map(repr, schema["enum"])), value)
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            raise SchemaViolation(path, f"a string of at least {schema['minLength']} characters", value)
        if "pattern" in schema and not re.search(schema["pattern"], value):
            raise SchemaViolation(path, f"a string matching {schema['pattern']}", value)
    if _is_type(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            raise SchemaViolation(path, f"a number >= {schema['minimum']}", value)
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            raise SchemaViolation(path, f"a number > {schema['exclusiveMinimum']}", value)
        if "maximum" in schema and value > schema["maximum"]:
            raise SchemaViolation(path, f"a number <= {schema['maximum']}", value)
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            raise SchemaViolation(path, f"at least {schema['minItems']} items", value)
        if "items" in schema:
            for index, item in enumerate(value):
                validate(item, schema["items"], root, f"{path}[{index}]")
    if isinstance(value, dict):
        for name in schema.get("required", ()):
            if name not in value:
                raise SchemaViolation(_join(path, name), "a value (required field)", "nothing")
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                validate(item, properties[name], root, _join(path, name))
            elif extra is False:
                raise SchemaViolation(_join(path, name), "no such field; known: " + ", ".join(sorted(properties)), item)
            elif isinstance(extra, dict):
                validate(item, extra, root, _join(path, name))


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _describe_any(options: list[dict[str, Any]]) -> str:
    return " or ".join(str(option.get("type", option.get("$ref", "a matching value"))) for option in options)
