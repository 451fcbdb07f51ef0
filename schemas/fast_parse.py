"""The fast path of :func:`schemas.parsing.parse_message`: valid input in one msgspec pass.

``orjson.loads`` + the compiled ``fastjsonschema`` validator + building the model cost about
10 µs per clickstream event on the build machine; ``msgspec`` decodes and validates the same
message into typed structs in about 1 µs. The published JSON Schema files stay the contract:
the msgspec types are *generated from them* here (:func:`decoder`), one struct per event type
tagged by its ``type`` const, each property with its JSON type (``integer`` as msgspec's int,
which refuses ``1.0``: such a message only takes the full path), its ``minLength``,
``maxLength``, ``pattern``, ``minimum``, ``maximum`` and string ``enum``; an event type's
``anyOf`` of ``required`` lists (a survey answers at least one question) is checked when the
event is built. An event type whose schema uses any other keyword gets no fast path, and a
stream with such a type has none at all (everything then takes the full path).

The fast path only ever *accepts*. Whatever msgspec refuses, and whatever it accepts that the
full path might judge differently (a batch over the size limit, an empty batch, a timestamp
that does not parse or lies outside the accepted years), goes through the full path
unchanged, so every rejection keeps its reason and its detail. Model fields an event type's
schema does not list are carried as given, unvalidated, as the full path does.
``tests/schemas/test_fast_parse.py`` checks both paths give equal results on simulated
traffic and on every malformed input of the schema tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Annotated, Any, Literal, Union

import msgspec

from schemas.models import MODEL_BY_STREAM, TIMESTAMP_FIELDS, Event, Stream, model_fields

#: JSON Schema keywords of a property that the generated types reproduce exactly.
_PROPERTY_KEYWORDS = {
    "type", "minLength", "maxLength", "pattern", "description", "format", "const", "enum", "minimum", "maximum",
}  # fmt: skip
_DEF_KEYWORDS = {"type", "description", "properties", "required", "anyOf"}
_JSON_TYPES: dict[str, Any] = {"string": str, "number": float, "integer": int, "boolean": bool, "null": None}


#: A number that may overflow a double (a 3-digit exponent, or 309+ digits). msgspec reads 1e400 as
#: inf even in a field it skips, orjson refuses it (``invalid_json``): such messages take the full
#: path so both paths give one outcome. Hex ids can match too; they only lose the fast path.
_MAYBE_OVERFLOW = re.compile(rb"[0-9][eE][+]?[0-9]{3}|[0-9]{309}")
#: The regex above costs about 3 us per single-event message and 70 us per batch of 20 (it tries a
#: 309-digit run at every digit). This prefilter, in C: digits become 0, ``E`` becomes ``e`` and
#: ``+`` goes, so any text the regex matches contains ``0e000`` or 309 zeros afterwards; only then
#: is the regex run (0.6 us and 5 us). A false alarm only costs the regex.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789E", b"000000000e")
_ZERO_RUN = b"0" * 309


def _maybe_overflow(raw: bytes) -> bool:
    """Whether ``raw`` may hold a number msgspec and orjson read differently (see above)."""
    folded = raw.translate(_DIGITS_TO_ZERO, b"+")
    if b"0e000" not in folded and (len(raw) < len(_ZERO_RUN) or _ZERO_RUN not in folded):
        return False
    return _MAYBE_OVERFLOW.search(raw) is not None


class _Unsupported(Exception):
    """The schema uses something the generated types would not check exactly."""


def _property_type(spec: dict[str, Any]) -> Any:
    if set(spec) - _PROPERTY_KEYWORDS or "const" in spec:
        raise _Unsupported(sorted(spec))
    if spec.get("format") not in (None, "date-time"):
        raise _Unsupported(spec["format"])
    if "enum" in spec:
        values = spec["enum"]
        if set(spec) - {"enum", "description", "type"} or not values or not all(isinstance(v, str) for v in values):
            raise _Unsupported(values)
        if spec.get("type", "string") != "string":
            raise _Unsupported(spec["type"])
        return Literal[tuple(values)]
    names = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
    if any(name not in _JSON_TYPES for name in names):
        raise _Unsupported(names)
    # Each keyword constrains one JSON type; the other types of a union pass it unchecked.
    text, numeric = {}, {}
    if "minLength" in spec:
        text["min_length"] = spec["minLength"]
    if "maxLength" in spec:
        text["max_length"] = spec["maxLength"]
    if "pattern" in spec:
        text["pattern"] = spec["pattern"]
    if "minimum" in spec:
        numeric["ge"] = spec["minimum"]
    if "maximum" in spec:
        numeric["le"] = spec["maximum"]
    if (text and "string" not in names) or (numeric and not {"number", "integer"} & set(names)):
        raise _Unsupported(names)
    if {"number", "integer"} <= set(names):
        raise _Unsupported(names)  # msgspec's float would take the integers too; keep it exact
    members = []
    for name in names:
        python = _JSON_TYPES[name]
        if python is str and text:
            python = Annotated[str, msgspec.Meta(**text)]
        elif python in (int, float) and numeric:
            python = Annotated[python, msgspec.Meta(**numeric)]
        members.append(python)
    union = members[0]
    for member in members[1:]:
        union = union | member if union is not None else member | None
    return union


def _struct(stream: Stream, name: str, spec: dict[str, Any]) -> type[msgspec.Struct]:
    if set(spec) - _DEF_KEYWORDS or spec.get("type") != "object":
        raise _Unsupported(sorted(spec))
    properties, required = spec["properties"], set(spec.get("required", ()))
    tag = properties.get("type", {}).get("const")
    if tag != name or "type" not in required:
        raise _Unsupported("type")
    defaults = {f.name: f.default for f in model_fields(MODEL_BY_STREAM[stream])}
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for field in (*properties, *(f for f in defaults if f not in properties)):
        if field == "type":
            continue
        # A model field this type does not define is carried as given, like the full path does.
        kind = _property_type(properties[field]) if field in properties else Any
        if field in required:
            fields.append((field, kind))
        elif defaults.get(field) is None:
            # Absent and the model's default give the same model (every optional default is None);
            # an explicit null where the schema forbids it still fails the type, so the full path judges it.
            fields.append((field, kind, None))
        else:
            raise _Unsupported(field)
    any_of = spec.get("anyOf", [])
    for alternative in any_of:
        names = alternative.get("required") if isinstance(alternative, dict) else None
        if set(alternative) != {"required"} or not names or set(names) - set(properties) - {"type"}:
            raise _Unsupported(alternative)
        if any(field not in required and "null" in _type_names(properties[field]) for field in names):
            raise _Unsupported(names)  # present as null would pass "required"; None cannot tell
    # Each alternative's fields, for the builder: a field is present iff it is not None, since
    # none of them takes null (an explicit null fails its type, and the full path judges it).
    namespace = {"__any_of__": tuple(tuple(alternative["required"]) for alternative in any_of)}
    return msgspec.defstruct(
        f"{stream.value}_{name}", fields, tag_field="type", tag=name, kw_only=True, namespace=namespace
    )


def _type_names(spec: dict[str, Any]) -> list[str]:
    kind = spec.get("type", [])
    return kind if isinstance(kind, list) else [kind]


class _FullPath(Exception):
    """This event needs the full path's judgement (a timestamp it may reject)."""


def _compile_builder(stream: Stream, struct: type[msgspec.Struct]) -> Callable[..., Event]:
    """``build(struct, to_ts) -> model``: straight-line code, no per-field loop on the hot path."""
    model = MODEL_BY_STREAM[stream]
    timestamps = set(TIMESTAMP_FIELDS[stream])
    args = []
    for field in model_fields(model):
        if field.name == "type":
            args.append(repr(struct.__struct_config__.tag))
        elif field.name in timestamps:
            args.append(f"None if s.{field.name} is None else to_ts(s.{field.name})")
        else:
            args.append(f"s.{field.name}")
    namespace: dict[str, Any] = {"Model": model, "_FullPath": _FullPath}
    lines = ["def build(s, to_ts):"]
    any_of: tuple[tuple[str, ...], ...] = getattr(struct, "__any_of__", ())
    if any_of:  # the schema's anyOf: at least one alternative's fields all present
        present = " or ".join("(" + " and ".join(f"s.{f} is not None" for f in names) + ")" for names in any_of)
        lines.append(f"    if not ({present}):\n        raise _FullPath")
    # Positional: the model's fields in order (a struct builds faster from positional arguments).
    lines.append(f"    return Model({', '.join(args)})")
    exec("\n".join(lines), namespace)
    return namespace["build"]


@cache
def _structs(stream: Stream) -> tuple[type[msgspec.Struct], ...] | None:
    from schemas.parsing import load_schema

    try:
        return tuple(_struct(stream, name, spec) for name, spec in load_schema(stream)["$defs"].items())
    except _Unsupported:
        return None


@cache
def decoder(stream: Stream) -> msgspec.json.Decoder[Any] | None:
    """A decoder of one event or a batch of ``stream``; None when the schema cannot be mirrored."""
    structs = _structs(stream)
    if structs is None:
        return None
    one: Any = structs[0] if len(structs) == 1 else Union[structs]  # noqa: UP007 - built at run time
    return msgspec.json.Decoder(one | list[one])


@cache
def _builders(stream: Stream) -> dict[type, Callable[..., Event]]:
    return {struct: _compile_builder(stream, struct) for struct in _structs(stream) or ()}


class _FastPath:
    """The fast path of one stream, built once: decoder, per-type builders and the year bounds."""

    __slots__ = ("builders", "decode", "earliest", "latest", "parse_timestamp")

    def __init__(self, stream: Stream, parse_timestamp: Callable[[str], float], earliest: float, latest: float) -> None:
        decode = decoder(stream)
        assert decode is not None
        self.decode = decode.decode
        self.builders = _builders(stream)
        self.parse_timestamp = parse_timestamp
        self.earliest, self.latest = earliest, latest

    def to_ts(self, text: Any) -> float:
        try:
            ts = self.parse_timestamp(text)
        except Exception:
            raise _FullPath from None
        if not self.earliest <= ts < self.latest:
            raise _FullPath
        return ts

    def __call__(self, raw: bytes, max_batch_events: int) -> tuple[list[Event], list[int | None]] | None:
        if _maybe_overflow(raw):
            return None
        try:
            doc = self.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return None
        builders, to_ts = self.builders, self.to_ts
        try:
            if not isinstance(doc, list):
                return [builders[type(doc)](doc, to_ts)], [None]
            if not doc or len(doc) > max_batch_events:
                return None
            return [builders[type(item)](item, to_ts) for item in doc], list(range(len(doc)))
        except _FullPath:
            return None


@cache
def fast_path(
    stream: Stream, parse_timestamp: Callable[[str], float], earliest: float, latest: float
) -> Callable[[bytes, int], tuple[list[Event], list[int | None]] | None] | None:
    """The fast path of ``stream`` (built once), or None when its schema cannot be mirrored.

    Called with a message and the batch limit, it returns the events of the message and their
    batch positions when every one is valid, or None when the full path must judge it.
    """
    return _FastPath(stream, parse_timestamp, earliest, latest) if decoder(stream) is not None else None
