"""A bug of ours on one event dead-letters that event and the stream goes on (no Kafka)."""

from __future__ import annotations

import hashlib

import orjson
import pytest
from prometheus_client import CollectorRegistry

import streams.pipeline
from schemas import Stream
from streams.contacts import ContactsHandler
from streams.deliveries import DeliveriesHandler
from streams.metrics import Metrics
from streams.pipeline import Context
from streams.settings import Settings
from streams.size_budget import DEFAULT_BUDGET, record_bytes
from streams.topics import Topic

T = "2026-03-02T09:00:00Z"


class DetectorBug(Exception):
    """Stands for any exception a detector might raise."""


@pytest.fixture
def ctx() -> Context:
    return Context.create(Settings(), Metrics(CollectorRegistry()))


def value(ctx: Context, name: str, **labels: str) -> float:
    return ctx.metrics.registry.get_sample_value(name, labels) or 0.0


def survey(event_id: str, csat: int) -> dict:
    return {"event_id": event_id, "ts": T, "type": "survey_response", "customer_id": "c-1", "csat": csat}


def dead_letters(out) -> list[tuple[bytes, dict[str, bytes]]]:
    return [(r.value, dict(r.headers)) for r in out.records if r.topic == Topic.DEADLETTER]


def test_a_detector_raising_dead_letters_its_event_and_the_batch_goes_on(ctx, monkeypatch):
    handler = ContactsHandler(ctx)
    detect = handler.detractors.process

    def buggy(event, contact_reason=None):
        if event.event_id == "boom":
            raise DetectorBug("division by zero in a detector")
        return detect(event, contact_reason)

    monkeypatch.setattr(handler.detractors, "process", buggy)
    batch = [survey("ok-1", 1), survey("boom", 1), survey("ok-2", 5)]
    out = handler.handle(orjson.dumps(batch), key=b"c-1", partition=1, offset=9)
    ((payload, headers),) = dead_letters(out)
    assert orjson.loads(payload) == batch[1]  # the element, re-encoded, as for rejected elements
    assert headers["cxpulse-reason"] == b"processing_error"
    assert headers["cxpulse-exception-type"] == f"{__name__}.DetectorBug".encode()
    assert headers["cxpulse-batch-index"] == b"1"
    assert (headers["cxpulse-source-partition"], headers["cxpulse-source-offset"]) == (b"1", b"9")
    assert b"processing survey_response event" in headers["cxpulse-error"]
    # Exactly one outcome per event: two accepted and counted, one dead-lettered.
    assert value(ctx, "cxpulse_events_total", stream="contacts", type="survey_response") == 2
    assert value(ctx, "cxpulse_events_rejected_total", stream="contacts", reason="processing_error") == 1
    assert value(ctx, "cxpulse_deadletters_total", stream="contacts") == 1
    # The detractor signal of ok-1 still goes out (ok-2 is a happy customer).
    (signals,) = [orjson.loads(r.value) for r in out.records if r.topic == Topic.SIGNALS and r.partition is None]
    assert [s["kind"] for s in signals] == ["detractor"]
    # The handler keeps working on the next message.
    out = handler.handle(orjson.dumps(survey("ok-3", 4)), key=b"c-1")
    assert dead_letters(out) == []
    assert value(ctx, "cxpulse_events_total", stream="contacts", type="survey_response") == 3


def test_partial_outputs_of_a_failed_event_are_dropped(ctx, monkeypatch):
    handler = ContactsHandler(ctx)
    original = handler.on_event

    def half_done(event, late, out):
        original(event, late, out)  # emits a complaint signal...
        raise DetectorBug("...then fails")

    monkeypatch.setattr(handler, "on_event", half_done)
    opened = {
        "event_id": "o-1", "ts": T, "type": "contact_opened", "contact_id": "k", "customer_id": "c-1",
        "channel": "chat", "reason": "billing", "complaint": True,
    }  # fmt: skip
    raw = orjson.dumps(opened)
    out = handler.handle(raw, key=b"c-1")
    assert [r.topic for r in out.records] == [Topic.DEADLETTER]
    assert out.records[0].value == raw  # a message of one event keeps its original bytes


def test_a_failure_while_advancing_the_clock_dead_letters_the_message(ctx, monkeypatch):
    handler = DeliveriesHandler(ctx)

    def broken_clock(now, out):
        raise DetectorBug("clock")

    monkeypatch.setattr(handler, "on_clock", broken_clock)
    raw = orjson.dumps(
        {"event_id": "d-1", "ts": T, "type": "delivered", "order_id": "o", "customer_id": "c", "carrier": "x",
         "region": "r"}
    )  # fmt: skip
    ((payload, headers),) = dead_letters(handler.handle(raw, key=b"o"))
    assert payload == raw and headers["cxpulse-reason"] == b"processing_error"
    assert b"advancing the event-time clock" in headers["cxpulse-error"]


def test_a_failure_in_parsing_dead_letters_the_message(ctx, monkeypatch):
    def broken_parser(*args, **kwargs):
        raise RecursionError("parser")

    handler = ContactsHandler(ctx)
    monkeypatch.setattr(handler, "_parse", broken_parser)
    ((payload, headers),) = dead_letters(handler.handle(b"{}", key=b"k"))
    assert (payload, headers["cxpulse-exception-type"]) == (b"{}", b"RecursionError")


def test_a_tombstone_is_invalid_json_not_a_crash(ctx):
    ((payload, headers),) = dead_letters(ContactsHandler(ctx).handle(None, key=b"k"))
    assert (payload, headers["cxpulse-reason"]) == (b"", b"invalid_json")


def test_a_dead_letter_too_large_to_send_is_truncated_not_dropped(ctx):
    # A batch element that grows when re-encoded (1e5 -> 100000.0) past the producer's limit.
    element = b'{"type":"nope","pad":[' + b"1e5," * 240_000 + b"1e5]}"
    raw = b"[" + element + b"]"
    assert len(raw) <= ctx.settings.max_message_bytes
    ((payload, headers),) = dead_letters(ContactsHandler(ctx).handle(raw, key=b"c-1"))
    reencoded = orjson.dumps(orjson.loads(raw)[0])
    assert headers["cxpulse-reason"] == b"too_large" and b"was unknown_type" in headers["cxpulse-error"]
    assert headers["cxpulse-original-size"] == str(len(reencoded)).encode()
    assert headers["cxpulse-original-sha256"] == hashlib.sha256(reencoded).hexdigest().encode()
    assert reencoded.startswith(payload)
    assert record_bytes(b"c-1", len(payload), list(headers.items())) <= DEFAULT_BUDGET.output_record_bytes
    assert value(ctx, "cxpulse_events_rejected_total", stream="contacts", reason="too_large") == 1
    assert value(ctx, "cxpulse_events_rejected_total", stream="contacts", reason="unknown_type") == 0


def progress_reports(out) -> list[tuple[str, float]]:
    return sorted({(r.key.decode() if isinstance(r.key, bytes) else r.key, orjson.loads(r.value)["through"])
                   for r in out.records if r.topic == Topic.SIGNALS})  # fmt: skip


def test_a_quiet_partition_reports_the_clock_the_spacing_held_back() -> None:
    wall = [0.0]
    progress = streams.pipeline.SignalsProgress(Stream.CONTACTS, Settings(partitions=2), lambda: wall[0])
    out = streams.pipeline.Outputs()
    for ts in (100.0, 100.4, 100.8):  # one report, then two within a second of event time
        progress.advance(0, ts, out)
    assert progress_reports(out) == [("contacts/0", 100.0)]
    assert progress.pending == 1
    wall[0] = 0.5
    out = streams.pipeline.Outputs()
    progress.flush(out)
    assert not out.records  # the partition may still be busy
    wall[0] = 1.0
    progress.flush(out)
    assert progress_reports(out) == [("contacts/0", 100.8)]
    assert len(out.records) == 2  # to every cx.signals partition
    assert progress.pending == 0
    out = streams.pipeline.Outputs()
    progress.flush(out)
    assert not out.records  # nothing new to report
