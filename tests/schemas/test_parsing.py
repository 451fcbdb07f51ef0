"""The wire contract: what is accepted, what is rejected and why."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from jsonschema import Draft202012Validator

from schemas import ClickstreamEvent, ContactEvent, DeliveryEvent, Stream, parse_message
from schemas.parsing import REASONS, load_schema, parse_timestamp

T = "2026-03-02T09:00:00Z"


def one(stream: Stream, event: dict):
    return parse_message(stream, orjson.dumps(event))


@pytest.mark.parametrize("stream", list(Stream))
def test_schema_files_are_valid_draft_2020_12(stream):
    doc = load_schema(stream)
    Draft202012Validator.check_schema(doc)
    assert doc["$id"].endswith(f"/{stream.value}/v1.json")


def test_schema_files_are_where_the_package_says():
    root = Path(__file__).resolve().parents[2] / "schemas" / "json"
    for stream in Stream:
        assert json.loads((root / stream.value / "v1.json").read_text()) == load_schema(stream)


def test_click_with_extra_fields_is_accepted_and_typed():
    result = one(
        Stream.CLICKSTREAM,
        {
            "event_id": "e1",
            "ts": "2026-03-02T11:00:00+02:00",
            "type": "click",
            "session_id": "s",
            "page": "/p",
            "element": "#b",
            "x": 3,
            "y": 4,
            "sdk_version": "9.9",
        },
    )
    assert result.rejections == []
    (event,) = result.events
    assert isinstance(event, ClickstreamEvent)
    assert event.ts == parse_timestamp(T)  # 11:00+02:00 is 09:00Z
    assert (event.element, event.x, event.y) == ("#b", 3, 4)


def test_batch_keeps_good_events_and_rejects_bad_ones_with_their_index():
    batch = [
        {"event_id": "a", "ts": T, "type": "page_view", "session_id": "s", "page": "/"},
        {"event_id": "b", "ts": T, "type": "teleport", "session_id": "s", "page": "/"},
        {"event_id": "c", "ts": T, "type": "page_view", "session_id": "s", "page": "/x"},
        "not an object",
    ]
    result = parse_message(Stream.CLICKSTREAM, orjson.dumps(batch))
    assert [e.event_id for e in result.events] == ["a", "c"]
    assert [(r.reason, r.index) for r in result.rejections] == [("unknown_type", 1), ("not_an_object", 3)]
    assert orjson.loads(result.rejections[0].payload) == batch[1]
    assert "teleport" in result.rejections[0].detail and "page_view" in result.rejections[0].detail


@pytest.mark.parametrize(
    ("stream", "event", "reason", "hint"),
    [
        (Stream.CONTACTS, {"type": "survey_response", "customer_id": "c", "csat": 9}, "schema_violation", "csat"),
        (Stream.CONTACTS, {"type": "survey_response", "customer_id": "c", "nps": 11}, "schema_violation", "nps"),
        (Stream.CONTACTS, {"type": "survey_response", "customer_id": "c", "ces": 0}, "schema_violation", "ces"),
        (Stream.CONTACTS, {"type": "survey_response", "customer_id": "c"}, "schema_violation", "survey_response"),
        (
            Stream.CONTACTS,
            {
                "type": "contact_opened",
                "contact_id": "k",
                "customer_id": "c",
                "channel": "fax",
                "reason": "billing",
                "complaint": True,
            },
            "schema_violation",
            "channel",
        ),
        (Stream.CLICKSTREAM, {"type": "click", "session_id": "s", "page": "/"}, "schema_violation", "element"),
        (
            Stream.CLICKSTREAM,
            {"type": "login", "session_id": "s", "page": "/", "success": "yes"},
            "schema_violation",
            "success",
        ),
        (Stream.CLICKSTREAM, {"type": "page_view", "session_id": "s", "page": "no-slash"}, "schema_violation", "page"),
        (
            Stream.DELIVERIES,
            {"type": "created", "order_id": "o", "customer_id": "c", "carrier": "x", "region": "r"},
            "schema_violation",
            "promised_by",
        ),
        (
            Stream.DELIVERIES,
            {
                "type": "created",
                "order_id": "o",
                "customer_id": "c",
                "carrier": "x",
                "region": "r",
                "promised_by": "soon",
            },
            "bad_timestamp",
            "promised_by",
        ),
        (Stream.DELIVERIES, {"type": "lost", "order_id": "o"}, "unknown_type", "lost"),
    ],
)
def test_impossible_events_are_rejected_with_an_actionable_reason(stream, event, reason, hint):
    result = one(stream, {"event_id": "e", "ts": T, **event})
    assert result.events == []
    (rejection,) = result.rejections
    assert rejection.reason == reason
    assert hint in rejection.detail


@pytest.mark.parametrize(
    "value",
    [
        "2026-03-02T09:00:00",
        "yesterday",
        "2026-13-01T00:00:00Z",
        "2026-06-30T23:59:60Z",  # a leap second: Python's datetime has none
        "1970-01-01T00:00:00Z",  # an unset clock
        "1999-12-31T23:59:59Z",
        "2100-01-01T00:00:00Z",
        "2999-03-02T09:00:00Z",
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",  # year 10000 in UTC
    ],
)
def test_timestamps_need_a_valid_rfc3339_with_offset_between_2000_and_2100(value):
    result = one(Stream.CLICKSTREAM, {"event_id": "e", "ts": value, "type": "scroll", "session_id": "s", "page": "/"})
    assert [r.reason for r in result.rejections] == ["bad_timestamp"]


@pytest.mark.parametrize("value", ["2000-01-01T00:00:00Z", "2099-12-31T23:59:59.999Z", "2000-01-01T01:00:00+01:00"])
def test_the_plausible_range_includes_its_start_and_the_last_instant_before_its_end(value):
    result = one(Stream.CLICKSTREAM, {"event_id": "e", "ts": value, "type": "scroll", "session_id": "s", "page": "/"})
    assert result.rejections == [] and len(result.events) == 1


def test_accepted_events_know_their_place_in_the_batch():
    event = {"event_id": "e", "ts": T, "type": "scroll", "session_id": "s", "page": "/"}
    result = parse_message(Stream.CLICKSTREAM, orjson.dumps([event, 42, {**event, "event_id": "f"}]))
    assert [e.event_id for e in result.events] == ["e", "f"] and result.event_indices == [0, 2]
    assert parse_message(Stream.CLICKSTREAM, orjson.dumps(event)).event_indices == [None]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [(b"{not json", "invalid_json"), (b"\xff\xfe{}", "invalid_utf8"), (b"[]", "empty_batch"), (b"42", "not_an_object")],
)
def test_undecodable_messages_keep_their_original_bytes(raw, reason):
    result = parse_message(Stream.CONTACTS, raw)
    (rejection,) = result.rejections
    assert (rejection.reason, rejection.payload, rejection.index) == (reason, raw, None)


def test_size_limits_are_enforced():
    event = {"event_id": "e", "ts": T, "type": "scroll", "session_id": "s", "page": "/"}
    assert parse_message(Stream.CLICKSTREAM, orjson.dumps([event] * 3), max_batch_events=2).rejections[0].reason == (
        "batch_too_large"
    )
    assert parse_message(Stream.CLICKSTREAM, orjson.dumps(event), max_message_bytes=10).rejections[0].reason == (
        "too_large"
    )


def test_every_reason_is_a_declared_label_value():
    assert len(set(REASONS)) == len(REASONS)


def test_contact_and_delivery_models():
    survey = one(
        Stream.CONTACTS, {"event_id": "e", "ts": T, "type": "survey_response", "customer_id": "c", "nps": 0, "ces": 7}
    ).events[0]
    assert isinstance(survey, ContactEvent) and (survey.nps, survey.ces, survey.csat) == (0, 7, None)
    shipped = one(
        Stream.DELIVERIES,
        {
            "event_id": "e",
            "ts": T,
            "type": "shipped",
            "order_id": "o",
            "customer_id": "c",
            "carrier": "dhl",
            "region": "north",
            "promised_by": "2026-03-04T09:00:00Z",
        },
    ).events[0]
    assert isinstance(shipped, DeliveryEvent)
    assert shipped.promised_by - shipped.ts == 2 * 86400
