"""Dead letters: every input message the worker rejects or fails on becomes one record on
``cx.deadletter``, and that record can always be sent.

A dead letter is the original bytes (for one element of a batch: the element re-encoded as JSON),
the original key, and these headers:

- ``cxpulse-reason``: one of :data:`schemas.parsing.REASONS` (a closed set, also a label value);
- ``cxpulse-error``: what went wrong, for a person (at most :data:`ERROR_DETAIL_BYTES`);
- ``cxpulse-stream``, ``cxpulse-source-topic``, ``cxpulse-source-partition``,
  ``cxpulse-source-offset``: where the input came from; ``cxpulse-batch-index`` for a batch element;
- ``cxpulse-exception-type`` (reason ``processing_error``): the type of the exception our code
  raised on the event, or that the producer raised on one of its outputs;
- ``cxpulse-original-size`` and ``cxpulse-original-sha256`` (reason ``too_large``, truncated): the
  size and digest of the bytes that did not fit.

Every header is bounded (Kafka topic names are at most 249 characters), so a dead letter is its
input record plus at most a few KiB: :mod:`streams.size_budget` makes the producer's limit leave
that room. A dead letter that still does not fit is truncated by :func:`fit` instead of failing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson

from schemas import Rejection
from streams.size_budget import record_bytes

Headers = list[tuple[str, bytes]]

REASON = "cxpulse-reason"
ERROR = "cxpulse-error"
BATCH_INDEX = "cxpulse-batch-index"
EXCEPTION_TYPE = "cxpulse-exception-type"
ORIGINAL_SIZE = "cxpulse-original-size"
ORIGINAL_SHA256 = "cxpulse-original-sha256"

#: Longest ``cxpulse-error`` value: enough to act on, bounded so headers fit the size budget.
ERROR_DETAIL_BYTES = 2000
#: Longest ``cxpulse-exception-type`` value (a qualified class name).
EXCEPTION_TYPE_BYTES = 200


@dataclass(frozen=True, slots=True)
class Source:
    """The input message a dead letter stands for."""

    stream: str
    topic: str
    key: bytes | None
    value: bytes
    partition: int | None = None
    offset: int | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record for ``cx.deadletter``; ``reason`` is the one in its headers."""

    key: bytes | None
    value: bytes
    headers: Headers
    reason: str


def deadletter_headers(
    rejection: Rejection,
    stream: str,
    source_topic: str,
    partition: int | None,
    offset: int | None,
    exception_type: str | None = None,
) -> Headers:
    """Headers a person (or a replay tool) needs to act on a rejected record."""
    headers = [
        (REASON, rejection.reason.encode()),
        (ERROR, rejection.detail.encode("utf-8", "replace")[:ERROR_DETAIL_BYTES]),
        ("cxpulse-stream", stream.encode()),
        ("cxpulse-source-topic", source_topic.encode()),
        ("cxpulse-source-partition", str(partition if partition is not None else -1).encode()),
        ("cxpulse-source-offset", str(offset if offset is not None else -1).encode()),
    ]
    if rejection.index is not None:
        headers.append((BATCH_INDEX, str(rejection.index).encode()))
    if exception_type is not None:
        headers.append((EXCEPTION_TYPE, exception_type.encode("utf-8", "replace")[:EXCEPTION_TYPE_BYTES]))
    return headers


def exception_type_name(exc: BaseException) -> str:
    """``ValueError`` for a builtin, ``package.module.Class`` otherwise."""
    kind = type(exc)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def processing_error(exc: BaseException, where: str, payload: bytes, index: int | None = None) -> Rejection:
    """The rejection of input our own code (or the producer) failed on: reason ``processing_error``."""
    return Rejection("processing_error", f"{where}: {exception_type_name(exc)}: {exc}", payload, index)


def element_payload(raw: bytes, index: int | None) -> bytes:
    """What a dead letter carries for event ``index`` of message ``raw``: the message itself for a
    single event, the element re-encoded for one element of a batch (as the parser does)."""
    if index is None:
        return raw
    return orjson.dumps(orjson.loads(raw)[index])


def dead_letter(rejection: Rejection, source: Source, limit: int, exc: BaseException | None = None) -> DeadLetter:
    """The dead letter of ``rejection``, truncated if it would exceed ``limit`` bytes."""
    exception_type = exception_type_name(exc) if exc is not None else None
    headers = deadletter_headers(
        rejection, source.stream, source.topic, source.partition, source.offset, exception_type
    )
    return fit(DeadLetter(source.key, rejection.payload, headers, rejection.reason), limit)


def fit(letter: DeadLetter, limit: int) -> DeadLetter:
    """``letter`` itself when it fits ``limit`` bytes, else its value truncated to fit, marked
    ``too_large`` with the original size and SHA-256 (the reason it had goes into the error)."""
    if record_bytes(letter.key, len(letter.value), letter.headers) <= limit:
        return letter
    headers = letter.headers
    if not any(name == ORIGINAL_SHA256 for name, _ in headers):  # not truncated before: mark it
        original = letter.value
        was = dict(headers).get(ERROR, b"").decode("utf-8", "replace")
        detail = f"dead letter of {len(original)} bytes truncated to fit {limit} bytes; was {letter.reason}: {was}"
        headers = [
            (REASON, b"too_large"),
            (ERROR, detail.encode("utf-8", "replace")[:ERROR_DETAIL_BYTES]),
            *((name, value) for name, value in headers if name not in (REASON, ERROR)),
            (ORIGINAL_SIZE, str(len(original)).encode()),
            (ORIGINAL_SHA256, hashlib.sha256(original).hexdigest().encode()),
        ]
    room = max(0, limit - record_bytes(letter.key, 0, headers))
    return DeadLetter(letter.key, letter.value[:room], headers, "too_large")
