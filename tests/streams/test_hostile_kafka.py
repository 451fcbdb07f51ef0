"""Hostile input through the real broker and a real worker: every message has exactly one outcome.

For each input stream, a corpus of hostile messages (broken encodings, broken JSON, impossible
values and types, timestamps out of range, batches at and over their limit, messages at every
size limit of :mod:`streams.size_budget`, a bug planted in a detector) is produced to the
broker, followed by valid events. The worker is the real ``cxpulse worker`` process, with one
bug planted in a detector of each stream (``faulty_worker.py``). Then:

- every message the broker took has exactly one outcome per event: accepted (counted by type in
  ``cxpulse_events_total``) or dead-lettered on ``cx.deadletter`` with a reason of the closed set,
  traced back to its message by the provenance headers;
- every dead letter was written (whole, or truncated with its original size and digest when it
  cannot fit), and the producer never refused one (``cxpulse_output_send_failures_total`` is 0);
- no agent crashed or was restarted (Faust logs both), and the valid events sent after the
  hostile ones were processed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas import Rejection, Stream
from schemas.parsing import REASONS, load_schema
from streams.deadletters import deadletter_headers
from streams.settings import Settings
from streams.size_budget import DEFAULT_BUDGET, record_bytes
from streams.topics import client_config
from tests.kafka_harness import WorkerProcess, consume_all, deliver, sample, start_worker, wait_signals_drained
from tests.streams.faulty_worker import TRIGGER

pytestmark = pytest.mark.kafka

BUDGET = DEFAULT_BUDGET
TS = "2026-03-02T09:00:00+00:00"
#: A valid event of each stream; the hostile kinds are variations of it.
BASES: dict[Stream, dict[str, Any]] = {
    Stream.CLICKSTREAM: {"type": "page_view", "session_id": "s-hostile", "page": "/hostile"},
    Stream.CONTACTS: {"type": "survey_response", "customer_id": "c-hostile", "csat": 4},
    Stream.DELIVERIES: {
        "type": "in_transit", "order_id": "o-hostile", "customer_id": "c-hostile", "carrier": "dhl", "region": "north",
    },
}  # fmt: skip
#: The valid events sent after the hostile ones, and the metric that shows they were processed.
AFTER = 5
AFTER_EVENTS: dict[Stream, dict[str, Any]] = {
    Stream.CLICKSTREAM: {"type": "page_view", "session_id": "s-after", "page": "/after"},
    Stream.CONTACTS: {
        "type": "contact_opened", "contact_id": "k-after", "customer_id": "c-after", "channel": "chat",
        "reason": "after", "complaint": False,
    },
    Stream.DELIVERIES: {
        "type": "delivered", "order_id": "o-after", "customer_id": "c-after", "carrier": "after", "region": "north",
    },
}  # fmt: skip
AFTER_METRICS: dict[Stream, tuple[str, dict[str, str]]] = {
    Stream.CLICKSTREAM: ("cxpulse_page_views_total", {"page": "/after"}),
    Stream.CONTACTS: ("cxpulse_contacts_opened_total", {"channel": "chat", "reason": "after"}),
    Stream.DELIVERIES: (
        "cxpulse_delivery_status_total", {"status": "delivered", "carrier": "after", "region": "north"}
    ),
}
#: Dead letters of cx.signals records (the customers agent's planted bug), not of an input message.
SIGNALS_DEAD_LETTERS = 1
#: How a message is produced: "plain" (a test producer that lets the broker judge the size),
#: "compressed" (lz4: the broker checks the compressed batch, the worker sees the full value),
#: "cxpulse" (librdkafka configured like cxpulse's own input producers: streams.topics.client_config).
PLAIN = {"linger.ms": 0, "batch.size": 200_000, "message.max.bytes": 20_000_000}
COMPRESSED = PLAIN | {"compression.type": "lz4"}


@dataclass
class Hostile:
    """One hostile message and its expected outcome."""

    kind: str
    value: bytes | None
    key: bytes | None = b"hostile"
    accepted: dict[str, int] = field(default_factory=dict)  # event type -> events accepted
    rejected: list[tuple[str, int | None]] = field(default_factory=list)  # (reason, batch index)
    producer: str = "plain"
    refused: bool = False  # the producer or the broker refuses it: it never reaches the worker
    truncated: bool = False  # its dead letter cannot fit and is written truncated
    location: tuple[int, int] | None = None  # (partition, offset) once the broker stored it

    def outcome(self) -> str:
        if self.refused:
            return "refused by the producer/broker"
        parts = [f"accepted {n} {t}" for t, n in self.accepted.items()]
        parts += [f"dead letter {reason}" + (f" [{index}]" if index is not None else "")
                  for reason, index in self.rejected]  # fmt: skip
        return ", ".join(parts) + (" (truncated)" if self.truncated else "")


def padded(event: dict[str, Any], size: int) -> bytes:
    """``event`` with an extra field that makes its JSON exactly ``size`` bytes."""
    bare = orjson.dumps({**event, "pad": ""})
    return orjson.dumps({**event, "pad": "p" * (size - len(bare))})


def with_extra(event: dict[str, Any], raw_json: bytes) -> bytes:
    """``event`` with an extra field whose value is ``raw_json`` as is (orjson cannot write it)."""
    return orjson.dumps(event)[:-1] + b',"extra":' + raw_json + b"}"


def too_large_dead_letter_bytes(stream: Stream, topic: str, key: bytes, value_bytes: int) -> int:
    """Size of the dead letter of a too_large message of ``value_bytes`` (partition and offset of
    two digits: the test's messages are within the first hundred of their partition)."""
    detail = f"message of {value_bytes} bytes exceeds {BUDGET.max_message_bytes}"
    headers = deadletter_headers(Rejection("too_large", detail, b""), stream.value, topic, 10, 99)
    return record_bytes(key, value_bytes, headers)


def largest_whole_dead_letter(stream: Stream, topic: str, key: bytes) -> int:
    """The largest too_large message value whose dead letter is still sent whole."""
    size = BUDGET.output_record_bytes - too_large_dead_letter_bytes(stream, topic, key, 0)
    while too_large_dead_letter_bytes(stream, topic, key, size) > BUDGET.output_record_bytes:
        size -= 1
    return size


def corpus(stream: Stream, topic: str) -> list[Hostile]:
    """The hostile kinds of one stream, with their expected outcomes."""
    base = BASES[stream]
    kind_of = base["type"]
    ids = (f"{stream.value}-{n}" for n in itertools.count())

    def event(**changes: Any) -> dict[str, Any]:
        ev = {"event_id": next(ids), "ts": TS, **base, **changes}
        return {k: v for k, v in ev.items() if v is not DROP}

    def ok(kind: str, value: bytes | None, n: int = 1, event_type: str = kind_of, **kw: Any) -> Hostile:
        return Hostile(kind, value, accepted={event_type: n}, **kw)

    def dead(kind: str, value: bytes | None, reason: str, **kw: Any) -> Hostile:
        return Hostile(kind, value, rejected=[(reason, None)], **kw)

    valid = orjson.dumps
    cases = [
        dead("invalid utf-8 in a string", valid(event()).replace(b'"event_id":"', b'"event_id":"\xff\xfe'),
             "invalid_utf8"),
        dead("utf-16 encoded json", json.dumps(event()).encode("utf-16"), "invalid_utf8"),
        dead("utf-8 byte order mark", b"\xef\xbb\xbf" + valid(event()), "invalid_utf8"),
        dead("deep nesting (100k arrays)", b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
        ok("deep nesting (500) in an extra field", with_extra(event(), b"[" * 500 + b"]" * 500)),
        dead("NaN", with_extra(event(), b"NaN"), "invalid_json"),
        dead("Infinity", with_extra(event(), b"-Infinity"), "invalid_json"),
        dead("number overflowing a double (1e400)", with_extra(event(), b"1e400"), "invalid_json"),
        ok("huge integer (30 digits) in an extra field", with_extra(event(), b"9" * 30)),
        ok("duplicate keys (the last one wins)", b'{"type":"teleport",' + valid(event())[1:]),
        dead("timestamp in 1970", valid(event(ts="1970-01-01T00:00:00Z")), "bad_timestamp"),
        dead("timestamp in 2999", valid(event(ts="2999-03-02T09:00:00Z")), "bad_timestamp"),
        dead("timestamp without offset", valid(event(ts="2026-03-02T09:00:00")), "bad_timestamp"),
        dead("leap second", valid(event(ts="2026-06-30T23:59:60Z")), "bad_timestamp"),
        dead("timestamp as a number", valid(event(ts=1772442000)), "schema_violation"),
        ok("nanoseconds and a +05:45 offset", valid(event(ts="2026-03-02T14:45:00.123456789+05:45"))),
        ok("ISO week date (lenient ISO 8601)", valid(event(ts="2026-W10-1T09:00:00Z"))),
        dead("unknown type", valid(event(type="teleport")), "unknown_type"),
        dead("type missing", valid(event(type=DROP)), "unknown_type"),
        dead("type not a string", valid(event(type=42)), "unknown_type"),
        ok("unicode ids and key", valid(event(event_id=f"{next(ids)}-é🙂漢字\u202e")), key="clé-🙂".encode()),
        ok("escaped NUL in strings", valid(event(event_id=f"{next(ids)}\u0000x"))),
        dead("raw NUL byte in a string", valid(event()).replace(b'"event_id":"', b'"event_id":"\x00'),
             "invalid_json"),
        dead("lone surrogate escape", with_extra(event(), b'"\\ud800"'), "invalid_json"),
        ok("extra fields", valid(event(extra={"nested": [1, {"a": None}]}, more="x" * 1000))),
        dead("empty batch", b"[]", "empty_batch"),
        ok(f"batch of exactly {Settings().max_batch_events} events",
           valid([event() for _ in range(Settings().max_batch_events)]), n=Settings().max_batch_events),
        dead(f"batch of {Settings().max_batch_events + 1} events",
             valid([event() for _ in range(Settings().max_batch_events + 1)]), "batch_too_large"),
        Hostile("batch with non-objects", valid([event(), 42, None, "x", [], event()]), accepted={kind_of: 2},
                rejected=[("not_an_object", i) for i in (1, 2, 3, 4)]),
        dead("top-level number", b"42", "not_an_object"),
        dead("top-level null", b"null", "not_an_object"),
        dead("top-level string", b'"hello"', "not_an_object"),
        dead("empty value", b"", "invalid_json"),
        dead("tombstone (null value)", None, "invalid_json"),
        dead("whitespace only", b" \n\t ", "invalid_json"),
        dead("trailing garbage", valid(event()) + b" trailing", "invalid_json"),
        dead("two documents", valid(event()) + valid(event()), "invalid_json"),
        ok("null key", valid(event()), key=None),
        ok("binary key", valid(event()), key=b"\x00\xff" * 64),
        ok("10 KB key", valid(event()), key=b"k" * 10_000),
        dead("event_id of 129 characters", valid(event(event_id="x" * 129)), "schema_violation"),
        dead("event_id of one million characters (~1 MB)", valid(event(event_id="x" * 1_000_000)),
             "schema_violation"),
        ok("exactly CXPULSE_MAX_MESSAGE_BYTES", padded(event(), BUDGET.max_message_bytes)),
        dead("CXPULSE_MAX_MESSAGE_BYTES + 1", padded(event(), BUDGET.max_message_bytes + 1), "too_large"),
        dead("the largest uncompressed value the input topic takes",
             padded(event(), BUDGET.input_record_bytes - record_bytes(b"hostile", 0, [])), "too_large"),
        Hostile("over the input topic's max.message.bytes", padded(event(), BUDGET.input_record_bytes),
                refused=True),
        ok("exactly CXPULSE_MAX_MESSAGE_BYTES from a cxpulse producer", padded(event(), BUDGET.max_message_bytes),
           producer="cxpulse"),
        Hostile("over message.max.bytes of a cxpulse producer", padded(event(), BUDGET.input_record_bytes + 1),
                producer="cxpulse", refused=True),
        dead("compressed: dead letter just fits the producer request size",
             padded(event(), largest_whole_dead_letter(stream, topic, b"hostile") - 16), "too_large",
             producer="compressed"),
        dead("compressed: dead letter just over the producer request size",
             padded(event(), largest_whole_dead_letter(stream, topic, b"hostile") + 16), "too_large",
             producer="compressed", truncated=True),
        dead("compressed: 5 MB message", padded(event(), 5 * 1024 * 1024), "too_large", producer="compressed",
             truncated=True),
        Hostile("batch element that outgrows the request size when re-encoded (1e5 -> 100000.0)",
                b'[{"type":"teleport","pad":[' + b"1e5," * 240_000 + b"1e5]}]", rejected=[("too_large", 0)],
                truncated=True),
        Hostile("planted detector bug on one event of a batch",
                valid([event(), event(event_id=f"{TRIGGER}-{next(ids)}"), event()]), accepted={kind_of: 2},
                rejected=[("processing_error", 1)]),
        dead("planted detector bug on a single event", valid(event(event_id=f"{TRIGGER}-{next(ids)}")),
             "processing_error"),
    ]  # fmt: skip
    cases += [
        dead(f"required field {name} missing", valid(event(**{name: DROP})), "schema_violation")
        for name in required_fields(stream, kind_of)
    ]
    cases += [
        dead(f"required field {name} of the wrong JSON type", valid(event(**{name: {"not": "a string"}})),
             "schema_violation")
        for name in required_fields(stream, kind_of)
    ]  # fmt: skip
    cases += STREAM_SPECIFIC[stream](event, ok, dead)
    return cases


class _Drop:
    """Marks a field removed from an event."""


DROP: Any = _Drop()


def required_fields(stream: Stream, event_type: str) -> list[str]:
    required = load_schema(stream)["$defs"][event_type]["required"]
    return [name for name in required if name != "type"]


def clickstream_kinds(event, ok, dead) -> list[Hostile]:
    v = orjson.dumps
    click = {"type": "click", "element": "#buy"}
    return [
        ok("click with coordinates ±1e308", v(event(**click, x=1e308, y=-1e308)), event_type="click"),
        dead("click without element", v(event(type="click")), "schema_violation"),
        dead("coordinates as strings", v(event(**click, x="10")), "schema_violation"),
        ok("page of 2048 characters", v(event(page="/" + "p" * 2047))),
        dead("page of 2049 characters", v(event(page="/" + "p" * 2048)), "schema_violation"),
        dead("login success as a string", v(event(type="login", success="yes")), "schema_violation"),
    ]


def contacts_kinds(event, ok, dead) -> list[Hostile]:
    v = orjson.dumps
    opened = {"type": "contact_opened", "contact_id": "k-h", "channel": "chat", "reason": "billing", "complaint": True}
    return [
        dead("csat 6", v(event(csat=6)), "schema_violation"),
        dead("nps -1", v(event(nps=-1)), "schema_violation"),
        dead("csat 2**64 - 1", v(event(csat=2**64 - 1)), "schema_violation"),
        dead("csat true", v(event(csat=True)), "schema_violation"),
        ok("csat 3.0 (an integer in JSON Schema)", v(event(csat=3.0))),
        dead("channel not in the enum", v(event(**opened | {"channel": "pigeon"})), "schema_violation"),
        ok("complaint from the far east (+14:00)", v(event(**opened, ts="2026-03-02T23:00:00+14:00")),
           event_type="contact_opened"),
        # Accepted here; its complaint signal trips the bug planted in the customers handler, which
        # only the agent loop catches: one dead letter from cx.signals (see SIGNALS_DEAD_LETTERS).
        ok("complaint whose signal trips a bug in the customers agent",
           v(event(**opened | {"contact_id": f"{TRIGGER}-k"})), event_type="contact_opened"),
        dead("negative handle time", v(event(type="contact_resolved", contact_id="k-h",
                                             first_contact_resolution=True, handle_seconds=-5)), "schema_violation"),
    ]  # fmt: skip


def deliveries_kinds(event, ok, dead) -> list[Hostile]:
    v = orjson.dumps
    created = {"type": "created", "promised_by": "2026-03-04T09:00:00Z"}
    return [
        dead("promised_by in 2999", v(event(**created | {"promised_by": "2999-01-01T00:00:00Z"})), "bad_timestamp"),
        dead("eta in 1970", v(event(eta="1970-01-01T00:00:00Z")), "bad_timestamp"),
        dead("created without promised_by", v(event(type="created")), "schema_violation"),
        dead("promised_by as a number", v(event(**created | {"promised_by": 1})), "schema_violation"),
        ok("eta null", v(event(eta=None))),
        ok("created with a promise in the past", v(event(**created | {"promised_by": "2026-03-01T09:00:00Z"})),
           event_type="created"),
    ]


STREAM_SPECIFIC = {Stream.CLICKSTREAM: clickstream_kinds, Stream.CONTACTS: contacts_kinds,
                   Stream.DELIVERIES: deliveries_kinds}  # fmt: skip


def after_events(stream: Stream) -> Iterator[bytes]:
    for n in range(AFTER):
        ts = f"2026-03-02T09:{n + 1:02d}:00Z"
        yield orjson.dumps({"event_id": f"{stream.value}-after-{n}", "ts": ts, **AFTER_EVENTS[stream]})


def produce_corpus(settings: Settings, topics: dict[Stream, str], corpora: dict[Stream, list[Hostile]]) -> None:
    """Send each message with its producer, remember where the broker put it (or that it refused)."""
    configs = {"plain": PLAIN, "compressed": COMPRESSED, "cxpulse": client_config(settings) | {"linger.ms": 0}}
    for producer, config in configs.items():
        batch = [(stream, h) for stream, hs in corpora.items() for h in hs if h.producer == producer]
        deliveries = deliver(settings, [(topics[stream], h.key, h.value) for stream, h in batch], **config)
        for (stream, hostile), delivery in zip(batch, deliveries, strict=True):
            assert (delivery.error is not None) == hostile.refused, (stream, hostile.kind, delivery.error)
            if delivery.error is None:
                hostile.location = (delivery.partition, delivery.offset)


def test_every_hostile_message_has_exactly_one_outcome(kafka_settings: Settings, tmp_path: Path) -> None:
    s = kafka_settings
    worker = start_worker(s, tmp_path / "logs", module="tests.streams.faulty_worker", loglevel="info")
    try:
        check_outcomes(s, worker)
    finally:
        worker.stop()


def check_outcomes(s: Settings, worker: WorkerProcess) -> None:
    topics = {Stream.CLICKSTREAM: s.topic_clickstream, Stream.CONTACTS: s.topic_contacts,
              Stream.DELIVERIES: s.topic_deliveries}  # fmt: skip
    corpora = {stream: corpus(stream, topics[stream]) for stream in Stream}
    for stream, cases in corpora.items():
        assert len({c.kind for c in cases}) >= 30 and len({c.kind for c in cases}) == len(cases), stream
    produce_corpus(s, topics, corpora)
    deliver(s, [(topics[stream], b"after", value) for stream in Stream for value in after_events(stream)], **PLAIN)

    reached = {stream: sum(not h.refused for h in cases) + AFTER for stream, cases in corpora.items()}
    m = worker.wait_for(
        lambda m: all(sample(m, "cxpulse_messages_total", stream=st.value) == n for st, n in reached.items()),
        timeout=180,
        what="every message handled",
    )
    # The customers agent's dead letter comes one hop later, from the signals of those messages.
    (m,) = wait_signals_drained([worker])

    # Accepted events, by stream and type: exactly the expected ones (and the valid ones sent after).
    want_accepted: Counter[tuple[str, str]] = Counter()
    want_rejected: Counter[tuple[str, str]] = Counter()
    for stream, cases in corpora.items():
        want_accepted[stream.value, AFTER_EVENTS[stream]["type"]] += AFTER
        for h in cases:
            for event_type, n in h.accepted.items():
                want_accepted[stream.value, event_type] += n
            for reason, _ in h.rejected:
                want_rejected[stream.value, reason] += 1
    want_rejected["signals", "processing_error"] += SIGNALS_DEAD_LETTERS
    got_accepted = counters(m, "cxpulse_events_total", "type")
    got_rejected = counters(m, "cxpulse_events_rejected_total", "reason")
    assert got_accepted == dict(want_accepted)
    assert got_rejected == dict(want_rejected)
    assert set(reason for _, reason in got_rejected) <= set(REASONS)
    for stream, (name, labels) in AFTER_METRICS.items():
        assert sample(m, name, **labels) == AFTER, stream

    # Dead letters: one per expected rejection, traced back to its message by its headers.
    letters = consume_all(s, s.topic_deadletter, expected=sum(want_rejected.values()), timeout=120)
    by_location = {
        (topics[stream], *h.location): (stream, h) for stream, cases in corpora.items() for h in cases if h.location
    }
    got: dict[str, list[tuple[str, int | None]]] = {}
    from_signals = [letter for letter in letters if letter.headers["cxpulse-source-topic"] == s.topic_signals.encode()]
    assert len(from_signals) == SIGNALS_DEAD_LETTERS
    for letter in from_signals:
        assert letter.headers["cxpulse-reason"] == b"processing_error" and TRIGGER.encode() in letter.value
        assert letter.headers["cxpulse-exception-type"] == b"tests.streams.faulty_worker.PlantedBug"
    for letter in letters:
        if letter in from_signals:
            continue
        headers = {k: v.decode("utf-8", "replace") for k, v in letter.headers.items()}
        where = (headers["cxpulse-source-topic"], int(headers["cxpulse-source-partition"]),
                 int(headers["cxpulse-source-offset"]))  # fmt: skip
        stream, hostile = by_location[where]
        index = int(headers["cxpulse-batch-index"]) if "cxpulse-batch-index" in headers else None
        got.setdefault(f"{stream.value}: {hostile.kind}", []).append((headers["cxpulse-reason"], index))
        assert headers["cxpulse-stream"] == stream.value and headers["cxpulse-error"]
        assert letter.key == hostile.key
        check_dead_letter_value(hostile, letter.value, letter.headers, index)
    want = {f"{stream.value}: {h.kind}": sorted(h.rejected, key=str) for stream, cs in corpora.items()
            for h in cs if h.rejected}  # fmt: skip
    assert {kind: sorted(pairs, key=str) for kind, pairs in got.items()} == want
    assert len(letters) == sum(want_rejected.values())

    # Nothing had to be rescued: the budget fits every dead letter; no agent crashed or restarted.
    assert counters(m, "cxpulse_output_send_failures_total", "topic") == {}
    log = worker.log_path.read_text(errors="replace")
    for sign in ("Crashed reason", "Restarting dead", "ProducerSendError", "MessageSizeTooLarge"):
        assert sign not in log, f"{sign!r} in the worker log:\n{worker.log_tail()}"
    report_outcomes(corpora)


def check_dead_letter_value(hostile: Hostile, value: bytes | None, headers: dict[str, bytes], index: int | None):
    original = hostile.value or b""
    payload = original if index is None else orjson.dumps(orjson.loads(original)[index])
    if hostile.truncated:
        assert headers["cxpulse-original-size"] == str(len(payload)).encode(), hostile.kind
        assert headers["cxpulse-original-sha256"] == hashlib.sha256(payload).hexdigest().encode(), hostile.kind
        assert payload.startswith(value or b"") and len(value or b"") < len(payload), hostile.kind
        assert len(value or b"") > BUDGET.output_record_bytes - 16_384, hostile.kind  # a truncation, not a stub
    else:
        assert (value or b"") == payload, hostile.kind  # whole: the original bytes (or the element)
        assert "cxpulse-original-size" not in headers, hostile.kind
    if headers["cxpulse-reason"] == b"processing_error":
        assert headers["cxpulse-exception-type"] == b"tests.streams.faulty_worker.PlantedBug", hostile.kind


def counters(m: dict, name: str, label: str) -> dict[tuple[str, str], float]:
    """Non-zero samples of a counter by (stream or topic, ``label``)."""
    result = {}
    for (sample_name, labels), v in m.items():
        if sample_name == name and v:
            labels = dict(labels)
            result[labels.get("stream", labels.get("topic", "")), labels.get(label, "")] = v
    return result


def report_outcomes(corpora: dict[Stream, list[Hostile]]) -> None:
    """The measured outcomes, for the record (shown with ``pytest -s``)."""
    for stream, cases in corpora.items():
        print(f"\n{stream.value}: {len(cases)} hostile kinds")
        for h in cases:
            print(f"  {h.kind:<75} {h.outcome()}")
