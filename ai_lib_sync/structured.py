"""Structured output into dataclasses: a JSON schema derived from a dataclass type, the same
schema adjusted to OpenAI strict mode, and a reply parsed and checked into an instance.

Why here and not in a dialect: every provider receives the same derived schema (each dialect
then puts it where its API wants it), and every reply is checked the same way, so
``response.parse(Person)`` means one thing whichever provider answered.

- ``schema_for(cls)``: nested dataclasses are inlined (every provider accepts inline objects;
  not all resolve ``$ref``), ``Optional[T]`` / ``T | None`` become ``[T, "null"]``, lists and
  tuples ``array``, ``dict[str, T]`` an object with ``additionalProperties: T``, enums and
  ``Literal`` an ``enum``, ``date``/``datetime``/``time``/``UUID`` strings with their
  ``format``. A field with a default is optional, one without is required; objects are
  closed (``additionalProperties: false``). JSON field names follow dataclasses-json's
  configuration (``@dataclass_json(letter_case=...)``, ``field(metadata=config(field_name=...))``),
  so the schema names what ``cls.to_json()`` would write. ``field(metadata={"description": ...})``
  becomes the property's description. Anything else (``Any``, recursive types, non-string
  dict keys) is refused before any I/O.
- ``strict_schema(schema)``: OpenAI strict mode's rules (platform.openai.com/docs/guides/
  structured-outputs#supported-schemas): an object at the root, every object closed, every
  property required, properties that were optional made nullable (a ``null`` reply for a
  field with a default means "use the default"), ``default``/``$schema`` dropped, ``oneOf``
  sent as ``anyOf``, a single ``allOf`` merged, ``$ref`` with siblings inlined, and keywords
  strict mode does not take (``minLength``, ``uniqueItems``, ...) moved into the description
  as a hint, as the official SDKs do. What it cannot express (free-form maps and objects
  without ``properties``, ``not``, conditionals, a non-object root) raises
  ``InvalidRequestError``; the OpenAI dialect then sends the schema unchanged with
  ``strict: false`` (logging a warning) and ``parse`` still checks the reply.
- ``parse(cls, text)``: JSON (a Markdown code fence around it is tolerated), then every
  problem at once (missing fields, wrong types, unknown fields, bad enum values, unreadable
  dates) in one ``StructuredOutputError`` that carries the raw text; that list is what
  ``execute_parsed`` sends back to the model when it re-asks.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import re
import types
import typing
import uuid
from collections.abc import Callable
from typing import Any

from .errors import ContentFilterError, InvalidRequestError

JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}
STRING_FORMATS = {datetime.datetime: "date-time", datetime.date: "date", datetime.time: "time",
                  uuid.UUID: "uuid"}
# Keywords OpenAI strict mode accepts (besides structure: type, properties, items, ...).
_STRICT_KEYWORDS = frozenset({
    "type", "properties", "required", "additionalProperties", "items", "enum", "const", "anyOf",
    "$ref", "$defs", "definitions", "description", "title", "pattern", "format", "multipleOf",
    "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum", "minItems", "maxItems",
})
_DROPPED_KEYWORDS = frozenset({"$schema", "$id", "default", "examples", "$comment", "nullable"})
_REFUSED_KEYWORDS = frozenset({"not", "if", "then", "else", "dependentRequired", "dependentSchemas",
                               "patternProperties", "unevaluatedProperties"})
_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n(.*?)\n?\s*```\s*$", re.DOTALL)
MAX_SHOWN_PROBLEMS = 20


class StructuredOutputError(InvalidRequestError):
    """The model's reply is not an instance of the requested dataclass (after the repairs
    ``execute_parsed`` was allowed). Kind ``invalid_request``, not retryable: sending the
    same request again is what ``repair_retries`` is for. ``raw_text`` is the last reply,
    ``problems`` what was wrong with it, ``attempts`` how many replies were read."""

    def __init__(self, message: str, *, raw_text: str = "", problems: list[str] | None = None,
                 attempts: int = 1, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.raw_text = raw_text
        self.problems = list(problems or [])
        self.attempts = attempts


# --- dataclass -> JSON schema ------------------------------------------------------------------


def is_dataclass_type(value: Any) -> bool:
    return isinstance(value, type) and dataclasses.is_dataclass(value)


def schema_for(cls: type) -> dict[str, Any]:
    """The JSON schema of dataclass ``cls``; ``InvalidRequestError`` names any field whose
    type has no JSON form."""
    if not is_dataclass_type(cls):
        shown = cls.__name__ if isinstance(cls, type) else repr(cls)
        raise InvalidRequestError(
            f"structured output needs a dataclass type (or a JSON-schema dict), got {shown}: "
            "decorate the class with @dataclass")
    return _object_schema(cls, cls.__name__, ())


def _object_schema(cls: type, path: str, seen: tuple[type, ...]) -> dict[str, Any]:
    if cls in seen:
        raise InvalidRequestError(
            f"{path}: {cls.__name__} refers to itself; recursive dataclasses have no inline JSON "
            "schema, so structured output cannot use them")
    hints = _type_hints(cls, path)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for field in _fields(cls):
        name = json_name(cls, field)
        sub = _type_schema(hints[field.name], f"{path}.{field.name}", (*seen, cls))
        description = field.metadata.get("description")
        if isinstance(description, str) and description:
            sub = {**sub, "description": description}
        properties[name] = sub
        if not _has_default(field):
            required.append(name)
    schema: dict[str, Any] = {"type": "object", "properties": properties, "required": required,
                              "additionalProperties": False}
    doc = _own_doc(cls)
    if doc:
        schema = {"description": doc, **schema}
    return schema


def _type_hints(cls: type, path: str) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception as exc:  # a forward reference that does not resolve
        raise InvalidRequestError(f"{path}: the field types of {cls.__name__} cannot be resolved ({exc})") from None


def _fields(cls: type) -> list[dataclasses.Field]:
    return [field for field in dataclasses.fields(cls) if field.init]


def _has_default(field: dataclasses.Field) -> bool:
    return field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING


def _own_doc(cls: type) -> str | None:
    doc = (cls.__doc__ or "").strip()
    # @dataclass writes "Person(name: str, ...)" when the class has no docstring.
    if not doc or doc.startswith(cls.__name__ + "("):
        return None
    return " ".join(doc.split())


def json_name(cls: type, field: dataclasses.Field) -> str:
    """The field's JSON name as dataclasses-json writes it (its ``letter_case`` and
    ``field_name`` configuration, class-level then field-level)."""
    config = {**(getattr(cls, "dataclass_json_config", None) or {}),
              **field.metadata.get("dataclasses_json", {})}
    letter_case = config.get("letter_case")
    return letter_case(field.name) if callable(letter_case) else field.name


def _type_schema(tp: Any, path: str, seen: tuple[type, ...]) -> dict[str, Any]:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp in JSON_TYPES:
        return {"type": JSON_TYPES[tp]}
    if tp in STRING_FORMATS:
        return {"type": "string", "format": STRING_FORMATS[tp]}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum_schema([member.value for member in tp], path)
    if is_dataclass_type(tp):
        return _object_schema(tp, path, seen)
    if origin is typing.Literal:
        return _enum_schema(list(args), path)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in args if arg is not type(None)]
        nullable = len(options) < len(args)
        schemas = [_type_schema(arg, path, seen) for arg in options]
        if len(schemas) == 1:
            return _nullable(schemas[0]) if nullable else schemas[0]
        return {"anyOf": [*schemas, *([{"type": "null"}] if nullable else [])]}
    if origin in (list, set, frozenset) and len(args) == 1:
        return {"type": "array", "items": _type_schema(args[0], f"{path}[]", seen)}
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return {"type": "array", "items": _type_schema(args[0], f"{path}[]", seen)}
    if origin is dict and len(args) == 2:
        if args[0] is not str:
            raise InvalidRequestError(f"{path}: JSON object keys are strings, so dict keys must be str, got {args}")
        return {"type": "object", "additionalProperties": _type_schema(args[1], f"{path}{{}}", seen)}
    raise InvalidRequestError(
        f"{path}: type {_type_name(tp)} has no JSON-schema form for structured output; use str, int, "
        "float, bool, an Enum, a Literal, date/datetime/time/UUID, a nested dataclass, Optional[...], "
        "list[...], tuple[T, ...] or dict[str, ...]")


def _enum_schema(values: list[Any], path: str) -> dict[str, Any]:
    kinds = {JSON_TYPES.get(type(value)) for value in values}
    if not values or None in kinds:
        raise InvalidRequestError(f"{path}: enum values must be strings, numbers or booleans, got {values!r}")
    schema: dict[str, Any] = {"enum": values}
    if len(kinds) == 1:
        schema = {"type": kinds.pop(), **schema}
    return schema


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or repr(tp)


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if _allows_null(schema):
        return schema
    if "anyOf" in schema:
        return {**schema, "anyOf": [*schema["anyOf"], {"type": "null"}]}
    kind = schema.get("type")
    if isinstance(kind, str) and "enum" not in schema:
        return {**schema, "type": [kind, "null"]}
    if isinstance(kind, list) and "enum" not in schema:
        return {**schema, "type": [*kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def _allows_null(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return "enum" not in schema or None in schema["enum"]
    return any(isinstance(option, dict) and _allows_null(option) for option in schema.get("anyOf", ()))


def response_format_for(schema_or_dataclass: Any, name: str | None = None,
                        strict: bool = True) -> dict[str, Any]:
    """The unified ``response_format`` for a JSON-schema dict or a dataclass type."""
    if is_dataclass_type(schema_or_dataclass):
        schema = schema_for(schema_or_dataclass)
        name = name or schema_or_dataclass.__name__
    elif isinstance(schema_or_dataclass, dict):
        schema = schema_or_dataclass
    else:
        schema_for(schema_or_dataclass)  # raises the "needs a dataclass type" error
        raise AssertionError("unreachable")
    name = name or "response"
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        raise InvalidRequestError(f"the schema name must be 1-64 letters, digits, '_' or '-', got {name!r}")
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": bool(strict)}}


# --- OpenAI strict mode ------------------------------------------------------------------------


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` made acceptable to OpenAI strict mode (see the module docstring). The input
    is not modified; a schema that already follows the rules comes back equal."""
    if not isinstance(schema, dict):
        raise InvalidRequestError(f"a JSON schema is a dict, got {type(schema).__name__}")
    out = _strict(schema, schema, "<root>")
    if out.get("type") != "object":
        raise InvalidRequestError(
            "strict structured output needs an object at the root of the schema (OpenAI rejects "
            f"{out.get('type') or 'anyOf'} there): wrap the value in an object, or pass strict=False")
    return out


def closed_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Every object of ``schema`` closed with ``additionalProperties: false`` where it says
    nothing, which Anthropic's and Bedrock's native structured outputs require; nothing else
    changes."""
    if not isinstance(schema, dict):
        return schema
    out = {key: _map_subschemas(value, closed_schema) if key in _SUBSCHEMA_MAPS
           else [closed_schema(item) for item in value] if key in _SUBSCHEMA_LISTS and isinstance(value, list)
           else closed_schema(value) if key in _SUBSCHEMA_KEYS else value
           for key, value in schema.items()}
    if _is_object(out) and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


_SUBSCHEMA_MAPS = frozenset({"properties", "$defs", "definitions"})
_SUBSCHEMA_LISTS = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
_SUBSCHEMA_KEYS = frozenset({"items", "additionalProperties", "not"})


def _map_subschemas(value: Any, fn: Callable[[Any], Any]) -> Any:
    return {name: fn(sub) for name, sub in value.items()} if isinstance(value, dict) else value


def _is_object(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    return kind == "object" or (isinstance(kind, list) and "object" in kind) or "properties" in schema


def _strict(schema: Any, root: dict[str, Any], path: str) -> Any:
    if not isinstance(schema, dict):
        return schema
    schema = dict(schema)
    refused = sorted(_REFUSED_KEYWORDS & schema.keys())
    if refused:
        raise InvalidRequestError(f"{path}: OpenAI strict mode does not support {', '.join(refused)}; pass strict=False")
    if "oneOf" in schema:
        schema["anyOf"] = [*schema.get("anyOf", ()), *schema.pop("oneOf")]
    all_of = schema.pop("allOf", None)
    if all_of is not None:
        if not (isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict)):
            raise InvalidRequestError(f"{path}: OpenAI strict mode does not support allOf with several schemas; "
                                      "merge them or pass strict=False")
        schema = {**all_of[0], **schema}
    ref = schema.get("$ref")
    if isinstance(ref, str) and len(schema) > 1:  # strict mode takes a bare $ref only
        schema.pop("$ref")
        schema = {**_resolve(ref, root, path), **schema}
        return _strict(schema, root, path)
    out: dict[str, Any] = {}
    hints: list[str] = []
    for key, value in schema.items():
        if key in _DROPPED_KEYWORDS:
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: _strict(sub, root, f"{path}.{name}") for name, sub in value.items()}
        elif key in ("$defs", "definitions") and isinstance(value, dict):
            out[key] = {name: _strict(sub, root, f"#/{key}/{name}") for name, sub in value.items()}
        elif key == "items":
            out[key] = _strict(value, root, f"{path}[]")
        elif key == "anyOf" and isinstance(value, list):
            out[key] = [_strict(option, root, path) for option in value]
        elif key in _STRICT_KEYWORDS:
            out[key] = value
        else:
            hints.append(f"{key}: {json.dumps(value)}")
    if hints:
        note = "; ".join(hints)
        out["description"] = f"{out['description']} ({note})" if out.get("description") else note
    if _is_object(out):
        extra = out.get("additionalProperties", "properties" not in out)
        if extra is not False:
            raise InvalidRequestError(
                f"{path}: OpenAI strict mode cannot express an object with free-form keys "
                "(additionalProperties / dict[str, ...]); use a list of objects, or pass strict=False")
        out["additionalProperties"] = False
        properties = out.setdefault("properties", {})
        optional = [name for name in properties if name not in set(out.get("required", ()))]
        for name in optional:
            properties[name] = _nullable(properties[name])
        out["required"] = list(properties)
    return out


def _resolve(ref: str, root: dict[str, Any], path: str) -> dict[str, Any]:
    target: Any = root
    if ref.startswith("#/"):
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, dict) else None
    if not isinstance(target, dict):
        raise InvalidRequestError(f"{path}: $ref {ref!r} does not point into this schema")
    return target


# --- reply -> instance -------------------------------------------------------------------------


def parse_response(cls: type, response: Any) -> Any:
    """``response.content`` parsed into ``cls``. A refusal raises ``ContentFilterError``
    (re-asking will not help); anything else that does not fit raises
    ``StructuredOutputError`` with every problem listed."""
    schema_for(cls)  # a bad type is the caller's error, whatever the reply says
    refusal = getattr(response, "refusal", None)
    content = getattr(response, "content", "") or ""
    if refusal:
        raise ContentFilterError(f"the model refused to answer in the requested structure: {refusal}",
                                 provider=getattr(response, "provider", None) or None,
                                 model=getattr(response, "model", None) or None, partial_content=content)
    try:
        return parse(cls, content)
    except StructuredOutputError as error:
        if getattr(response, "finish_reason", None) == "length":
            note = "the reply was cut off at the token limit (finish_reason 'length'): raise max_tokens"
            error.problems.append(note)
            error.message = f"{error.message}; {note}"
            error.args = (error.message,)
        error.provider = getattr(response, "provider", None) or error.provider
        error.model = getattr(response, "model", None) or error.model
        raise


def parse(cls: type, text: str) -> Any:
    """``text`` (a JSON object, optionally in a Markdown code fence) as an instance of ``cls``."""
    schema_for(cls)
    raw = text or ""
    fenced = _FENCE.match(raw)
    try:
        value = json.loads(fenced.group(1) if fenced else raw)
    except ValueError as exc:
        problem = "the reply is empty, not a JSON object" if not raw.strip() else f"the reply is not valid JSON ({exc})"
        raise _error(cls, raw, [problem]) from None
    problems: list[str] = []
    instance = _convert(cls, value, "", problems)
    if problems:
        raise _error(cls, raw, problems)
    return instance


def _error(cls: type, raw: str, problems: list[str]) -> StructuredOutputError:
    shown = problems[:MAX_SHOWN_PROBLEMS]
    more = len(problems) - len(shown)
    listing = "; ".join(shown) + (f"; and {more} more" if more > 0 else "")
    return StructuredOutputError(f"the reply does not fit {cls.__name__}: {listing}", raw_text=raw, problems=problems)


def repair_prompt(problems: list[str]) -> str:
    """The user turn ``execute_parsed`` adds after an invalid reply."""
    listing = "\n".join(f"- {problem}" for problem in problems[:MAX_SHOWN_PROBLEMS])
    return ("Your previous reply does not match the required JSON schema:\n" + listing +
            "\nReply again with only the corrected JSON object, no other text.")


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _where(path: str) -> str:
    return path or "the reply"


def _convert(tp: Any, value: Any, path: str, problems: list[str]) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if is_dataclass_type(tp):
        return _convert_object(tp, value, path, problems)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [arg for arg in args if arg is not type(None)]
        if len(options) == 1:
            return _convert(options[0], value, path, problems)
        for option in options:
            attempt: list[str] = []
            result = _convert(option, value, path, attempt)
            if not attempt:
                return result
        problems.append(f"{_where(path)}: expected {' or '.join(_describe(option) for option in options)}, "
                        f"got {_show(value)}")
        return None
    if value is None:
        problems.append(f"{_where(path)}: expected {_describe(tp)}, got null")
        return None
    if tp is bool:
        return value if isinstance(value, bool) else _wrong(tp, value, path, problems)
    if tp is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value if isinstance(value, int) and not isinstance(value, bool) else _wrong(tp, value, path, problems)
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return float(value) if ok else _wrong(tp, value, path, problems)
    if tp is str:
        return value if isinstance(value, str) else _wrong(tp, value, path, problems)
    if tp in STRING_FORMATS:
        return _convert_formatted(tp, value, path, problems)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        for member in tp:
            if member.value == value and type(member.value) is type(value):
                return member
        return _wrong(tp, value, path, problems)
    if origin is typing.Literal:
        return value if value in args else _wrong(tp, value, path, problems)
    if origin in (list, set, frozenset, tuple):
        if not isinstance(value, list):
            return _wrong(tp, value, path, problems)
        items = [_convert(args[0], item, f"{path}[{index}]", problems) for index, item in enumerate(value)]
        return origin(items)
    if origin is dict:
        if not isinstance(value, dict):
            return _wrong(tp, value, path, problems)
        return {key: _convert(args[1], item, f"{path}.{key}" if path else key, problems)
                for key, item in value.items()}
    raise AssertionError(f"unchecked type {tp!r}")  # schema_for refused it already


def _convert_object(cls: type, value: Any, path: str, problems: list[str]) -> Any:
    if not isinstance(value, dict):
        return _wrong(cls, value, path, problems)
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    known: set[str] = set()
    for field in _fields(cls):
        name = json_name(cls, field)
        known.add(name)
        where = f"{path}.{name}" if path else name
        tp = hints[field.name]
        if name not in value:
            if not _has_default(field):
                problems.append(f"{where}: missing (required)")
            continue
        item = value[name]
        if item is None and not _accepts_none(tp) and _has_default(field):
            continue  # strict mode's nullable stand-in for "not given": the default applies
        kwargs[field.name] = _convert(tp, item, where, problems)
    for name in value:
        if name not in known:
            problems.append(f"{path + '.' if path else ''}{name}: unexpected field; "
                            f"{cls.__name__} has {', '.join(sorted(known)) or 'no fields'}")
    if problems:
        return None
    return cls(**kwargs)


def _accepts_none(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp)


def _convert_formatted(tp: Any, value: Any, path: str, problems: list[str]) -> Any:
    if isinstance(value, str):
        try:
            if tp is uuid.UUID:
                return uuid.UUID(value)
            text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) and tp is not datetime.date else value
            parsed = tp.fromisoformat(text)
            if tp is datetime.date and isinstance(parsed, datetime.datetime):
                raise ValueError("a date-time where a date was expected")
            return parsed
        except ValueError:
            pass
    return _wrong(tp, value, path, problems)


def _wrong(tp: Any, value: Any, path: str, problems: list[str]) -> None:
    problems.append(f"{_where(path)}: expected {_describe(tp)}, got {_show(value)}")
    return None


def _describe(tp: Any) -> str:
    if tp in JSON_TYPES:
        return {"string": "a string", "integer": "an integer", "number": "a number",
                "boolean": "true or false"}[JSON_TYPES[tp]]
    if tp in STRING_FORMATS:
        return {"date-time": "an ISO 8601 date-time string", "date": "a date string (YYYY-MM-DD)",
                "time": "a time string (HH:MM:SS)", "uuid": "a UUID string"}[STRING_FORMATS[tp]]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(_show(member.value) for member in tp)
    if typing.get_origin(tp) is typing.Literal:
        return "one of " + ", ".join(_show(arg) for arg in typing.get_args(tp))
    if is_dataclass_type(tp):
        return f"an object ({tp.__name__})"
    origin = typing.get_origin(tp)
    if origin in (list, set, frozenset, tuple):
        return "an array"
    if origin is dict:
        return "an object"
    return _type_name(tp)
