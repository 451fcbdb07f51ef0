"""Parse and validate input messages against the versioned JSON Schema files.

A message is UTF-8 JSON holding one event object or an array of them (a batch). Each event
is checked against the schema of its ``type`` and turned into the stream's model; events
that fail become :class:`Rejection` records with a reason code (a bounded label value) and a
detail a person can act on. One bad event never spoils the rest of its batch.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

import fastjsonschema
import orjson

from schemas.exceptions import UnknownStreamError
from schemas.fast_parse import fast_path
from schemas.models import MODEL_BY_STREAM, TIMESTAMP_FIELDS, Event, Stream, model_fields

SCHEMA_VERSION = 1

#: Reason codes of rejected input. They are label values, so the set is closed.
REASONS = (
    "invalid_utf8",
    "invalid_json",
    "not_an_object",
    "empty_batch",
    "too_large",
    "batch_too_large",
    "unknown_type",
    "schema_violation",
    "bad_timestamp",
    "processing_error",  # our code (or the producer of its outputs) failed on valid input
)

#: Timestamps outside [2000-01-01, 2100-01-01) UTC are rejected (``bad_timestamp``): a clock that
#: is unset (1970) or wildly off would move a stream's event-time clock decades and mark every
#: open order, session and window as overdue or late.
EARLIEST_TS = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
LATEST_TS = datetime(2100, 1, 1, tzinfo=UTC).timestamp()


@dataclass(frozen=True, slots=True)
class Rejection:
    """One rejected message or batch element.

    ``index`` is the position in the batch (``None`` when the whole message was rejected);
    ``payload`` is what goes to the dead-letter topic: the original bytes for a whole
    message, the element re-encoded as JSON for one element of a batch.
    """

    reason: str
    detail: str
    payload: bytes
    index: int | None = None
    event_type: str | None = None


@dataclass(slots=True)
class ParseResult:
    events: list[Event] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    #: For each of ``events``, its position in the batch (``None`` for a message of one event).
    event_indices: list[int | None] = field(default_factory=list)


def load_schema(stream: Stream | str, version: int = SCHEMA_VERSION) -> dict[str, Any]:
    """The JSON Schema document of a stream, as published in ``schemas/json/``."""
    name = Stream(stream).value if stream in Stream.__members__.values() else str(stream)
    path = resources.files("schemas") / "json" / name / f"v{version}.json"
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError as exc:
        raise UnknownStreamError(f"no schema v{version} for stream {name!r}") from exc


def _any_string(value: str) -> bool:
    return True


@cache
def _validators(stream: Stream) -> Mapping[str, Callable[[Any], Any]]:
    """One compiled validator per event type, from the ``$defs`` of the stream's schema."""
    doc = load_schema(stream)
    defs = doc["$defs"]
    return {
        # Timestamps are checked by parse_timestamp (reason "bad_timestamp"), not by the
        # schema's format regex: one precise check, one clear reason.
        name: fastjsonschema.compile({"$ref": f"#/$defs/{name}", "$defs": defs}, formats={"date-time": _any_string})
        for name in defs
    }


@cache
def _model_fields(stream: Stream) -> frozenset[str]:
    return frozenset(f.name for f in model_fields(MODEL_BY_STREAM[stream]))


def parse_timestamp(value: str) -> float:
    """RFC 3339 with an explicit offset to epoch seconds; ``ValueError`` otherwise.

    >>> parse_timestamp("1970-01-01T00:00:01.250z")
    1.25
    """
    if value.endswith("z"):  # RFC 3339 allows a lower-case zone designator
        value = value[:-1] + "Z"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no UTC offset")
    return parsed.timestamp()


def parse_message(
    stream: Stream,
    raw: bytes,
    *,
    max_message_bytes: int = 1_048_576,
    max_batch_events: int = 1000,
) -> ParseResult:
    """Decode one Kafka message value of ``stream`` into events and rejections.

    Valid messages take msgspec's one-pass fast path (:mod:`schemas.fast_parse`, types generated
    from the same schema files); anything it does not accept is judged by
    :func:`parse_message_checked`, which gives every rejection its reason and detail.
    """
    return message_parser(stream, max_message_bytes=max_message_bytes, max_batch_events=max_batch_events)(raw)


@cache
def message_parser(
    stream: Stream, *, max_message_bytes: int = 1_048_576, max_batch_events: int = 1000
) -> Callable[[bytes], ParseResult]:
    """:func:`parse_message` for one stream and its limits, built once: the worker's hot path
    calls it per message without looking the fast path up again."""
    fast = fast_path(stream, parse_timestamp, EARLIEST_TS, LATEST_TS)

    def parse(raw: bytes) -> ParseResult:
        if fast is not None and len(raw) <= max_message_bytes:
            valid = fast(raw, max_batch_events)
            if valid is not None:
                return ParseResult(valid[0], [], valid[1])
        return parse_message_checked(
            stream, raw, max_message_bytes=max_message_bytes, max_batch_events=max_batch_events
        )

    return parse


def parse_message_checked(
    stream: Stream,
    raw: bytes,
    *,
    max_message_bytes: int = 1_048_576,
    max_batch_events: int = 1000,
) -> ParseResult:
    """:func:`parse_message` without the fast path: orjson, then each event's compiled JSON Schema."""
    result = ParseResult()
    if len(raw) > max_message_bytes:
        result.rejections.append(
            Rejection("too_large", f"message of {len(raw)} bytes exceeds {max_message_bytes}", raw)
        )
        return result
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        reason = "invalid_utf8" if "utf-8" in str(exc).lower() else "invalid_json"
        result.rejections.append(Rejection(reason, f"message is not valid JSON: {exc}", raw))
        return result
    if isinstance(doc, list):
        if not doc:
            result.rejections.append(Rejection("empty_batch", "batch array has no events", raw))
        elif len(doc) > max_batch_events:
            result.rejections.append(
                Rejection(
                    "batch_too_large",
                    f"batch of {len(doc)} events exceeds the limit of {max_batch_events}",
                    raw,
                )
            )
        else:
            for index, item in enumerate(doc):
                _parse_event(stream, item, index, None, result)
    else:
        _parse_event(stream, doc, None, raw, result)
    return result


def _parse_event(stream: Stream, item: Any, index: int | None, raw: bytes | None, result: ParseResult) -> None:
    where = "message" if index is None else f"event {index} of batch"

    def reject(reason: str, detail: str, event_type: str | None = None) -> None:
        payload = raw if raw is not None else orjson.dumps(item)
        result.rejections.append(Rejection(reason, f"{where}: {detail}", payload, index, event_type))

    if not isinstance(item, dict):
        reject("not_an_object", f"expected a JSON object, got {type(item).__name__}")
        return
    event_type = item.get("type")
    validator = _validators(stream).get(event_type) if isinstance(event_type, str) else None
    if validator is None:
        known = ", ".join(sorted(_validators(stream)))
        reject("unknown_type", f"unknown event type {event_type!r} for {stream}; expected one of {known}")
        return
    try:
        validator(item)
    except fastjsonschema.JsonSchemaValueException as exc:
        reject("schema_violation", f"{event_type}: {exc.message}", event_type)
        return
    fields = _model_fields(stream)
    values = {k: v for k, v in item.items() if k in fields}
    for name in TIMESTAMP_FIELDS[stream]:
        text = values.get(name)
        if text is None:
            continue
        try:
            values[name] = ts = parse_timestamp(text)
        except (ValueError, OverflowError) as exc:
            reject("bad_timestamp", f"{event_type}: field {name!r}: {exc}", event_type)
            return
        if not EARLIEST_TS <= ts < LATEST_TS:
            reject("bad_timestamp", f"{event_type}: field {name!r}: {text!r} is not between 2000 and 2100", event_type)
            return
    result.events.append(MODEL_BY_STREAM[stream](**values))
    result.event_indices.append(index)
