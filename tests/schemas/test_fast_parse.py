"""The msgspec fast path (``schemas/fast_parse.py``) gives what the full path gives.

``parse_message`` takes the fast path for valid input and the full path
(``parse_message_checked``: orjson + the compiled JSON Schema) for everything else; both must
agree on every message, or the fast path would change what cxpulse accepts.
"""

from __future__ import annotations

import orjson
import pytest

from deploy.simulator.simulation import SimulationConfig, batch_messages, generate
from schemas import Stream
from schemas.fast_parse import decoder
from schemas.parsing import parse_message, parse_message_checked

T = "2026-03-02T10:00:00Z"
CLICK = {"event_id": "e", "ts": T, "type": "click", "session_id": "s", "page": "/p", "element": "#b"}


def _same(stream: Stream, raw: bytes) -> None:
    fast, full = parse_message(stream, raw, max_batch_events=5), parse_message_checked(stream, raw, max_batch_events=5)
    assert fast.events == full.events
    assert fast.event_indices == full.event_indices
    assert fast.rejections == full.rejections


def test_every_stream_has_a_fast_path() -> None:
    assert all(decoder(stream) is not None for stream in Stream)


@pytest.mark.parametrize("batch_size", [1, 5])
def test_simulated_traffic_parses_the_same(batch_size: int) -> None:
    config = SimulationConfig(seed=5, sim_seconds=1800, events_per_sim_second=20.0)
    messages = list(batch_messages(generate(config), batch_size, 30.0))
    assert len(messages) > 1000
    for msg in messages:
        _same(Stream(msg.stream), orjson.dumps(msg.events if msg.batch else msg.events[0]))


EDGE_CASES = [
    CLICK,
    [CLICK, {**CLICK, "event_id": "f"}],
    [],
    [CLICK] * 6,  # over max_batch_events
    [CLICK, {**CLICK, "type": "teleport"}],
    {**CLICK, "message": "carried as given", "success": "not validated on a click"},
    {**CLICK, "extra": {"nested": [1, 2]}},
    {**CLICK, "ts": "2026-03-02T10:00:00z"},
    {**CLICK, "ts": "2026-03-02T10:00:00"},
    {**CLICK, "ts": "1999-12-31T23:59:59Z"},
    {**CLICK, "ts": "not a time"},
    {**CLICK, "ts": 12},
    {**CLICK, "x": 1, "y": 2.5},
    {**CLICK, "x": "1"},
    {**CLICK, "x": True},
    {**CLICK, "no_response": 1},
    {**CLICK, "page": "no-slash"},
    {**CLICK, "page": ""},
    {**CLICK, "page": "/" + "é" * 2047},
    {**CLICK, "page": "/" + "é" * 2048},
    {**CLICK, "event_id": "x" * 128},
    {**CLICK, "event_id": "x" * 129},
    {**CLICK, "customer_id": None},
    {**CLICK, "customer_id": ""},
    {**CLICK, "element": None},
    {k: v for k, v in CLICK.items() if k != "element"},
    {**CLICK, "type": "login", "success": False},
    {**CLICK, "type": "login", "success": None},
    {**CLICK, "type": None},
    "a string",
    12,
    None,
]


@pytest.mark.parametrize("doc", EDGE_CASES)
def test_edge_cases_parse_the_same(doc: object) -> None:
    _same(Stream.CLICKSTREAM, orjson.dumps(doc))


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"\xff\xfe", b'{"a": 1} trailing', b'{"event_id": "e", "event_id": "f"}', orjson.dumps(CLICK) + b" ",
     orjson.dumps(CLICK)[:-1] + b',"extra":1e400}', orjson.dumps(CLICK)[:-1] + b',"extra":' + b"9" * 400 + b"}"],
)
def test_undecodable_bytes_parse_the_same(raw: bytes) -> None:
    _same(Stream.CLICKSTREAM, raw)


def test_deliveries_edge_cases_parse_the_same() -> None:
    base = {"event_id": "d", "ts": T, "type": "created", "order_id": "o", "customer_id": "c", "carrier": "dhl",
            "region": "north", "promised_by": T}  # fmt: skip
    for doc in (base, {**base, "eta": T}, {**base, "eta": None}, {**base, "promised_by": "soon"},
                {**base, "promised_by": "2150-01-01T00:00:00Z"}, {k: v for k, v in base.items() if k != "promised_by"},
                {**base, "type": "delivered"}, {**base, "type": "lost"}):  # fmt: skip
        _same(Stream.DELIVERIES, orjson.dumps(doc))


def test_the_overflow_prefilter_never_misses_what_the_regex_catches() -> None:
    # The cheap prefilter may raise false alarms, never miss: random texts dense in digits, signs
    # and exponents, plus the edge cases, all judged the same as the regex alone would.
    import random

    from schemas.fast_parse import _MAYBE_OVERFLOW, _maybe_overflow

    rng = random.Random(3)
    alphabet = b"0123456789eE+-.,:\"x "
    texts = [bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 40))) for _ in range(20_000)]
    texts += [b"1e400", b"1E+400", b"9" * 309, b"9" * 308, b"1e40", b"12e+3", b"x1e+4000", b"1+e400"]
    caught = 0
    for text in texts:
        expected = _MAYBE_OVERFLOW.search(text) is not None
        assert _maybe_overflow(text) == expected, text
        caught += expected
    assert caught > 100  # the random texts did exercise the positive case


OPENED = {"event_id": "c", "ts": T, "type": "contact_opened", "contact_id": "k", "customer_id": "u", "channel": "chat",
          "reason": "billing", "complaint": True}  # fmt: skip
RESOLVED = {"event_id": "r", "ts": T, "type": "contact_resolved", "contact_id": "k", "customer_id": "u",
            "first_contact_resolution": False, "handle_seconds": 12.5}  # fmt: skip
SURVEY = {"event_id": "s", "ts": T, "type": "survey_response", "customer_id": "u", "contact_id": None, "csat": 4}
WITHOUT_CSAT = {k: v for k, v in SURVEY.items() if k != "csat"}

CONTACT_EDGE_CASES = [
    OPENED, RESOLVED, SURVEY, [OPENED, RESOLVED, SURVEY],
    {**OPENED, "channel": "pigeon"}, {**OPENED, "channel": None}, {**OPENED, "channel": "Chat"},
    {k: v for k, v in OPENED.items() if k != "channel"}, {**OPENED, "order_id": None}, {**OPENED, "order_id": "o"},
    {**OPENED, "complaint": "yes"}, {**OPENED, "reason": ""}, {**OPENED, "reason": "r" * 65},
    {**RESOLVED, "handle_seconds": 0}, {**RESOLVED, "handle_seconds": -0.5}, {**RESOLVED, "handle_seconds": None},
    {**RESOLVED, "handle_seconds": 7}, {**RESOLVED, "handle_seconds": "7"}, {**RESOLVED, "handle_seconds": True},
    {k: v for k, v in RESOLVED.items() if k != "handle_seconds"},
    {**SURVEY, "csat": 0}, {**SURVEY, "csat": 6}, {**SURVEY, "csat": 1}, {**SURVEY, "csat": 5}, {**SURVEY, "csat": 4.0},
    {**SURVEY, "csat": 4.5}, {**SURVEY, "csat": True}, {**SURVEY, "csat": None}, {**SURVEY, "csat": "4"},
    {**WITHOUT_CSAT}, {**WITHOUT_CSAT, "nps": 0}, {**WITHOUT_CSAT, "nps": 10},
    {**WITHOUT_CSAT, "nps": 11}, {**WITHOUT_CSAT, "ces": 7}, {**WITHOUT_CSAT, "ces": 8}, {**WITHOUT_CSAT, "nps": None},
    {**SURVEY, "nps": 9, "ces": 2}, {**SURVEY, "contact_id": "k" * 129}, {**SURVEY, "channel": "anything, unchecked"},
    [SURVEY, WITHOUT_CSAT],
]  # fmt: skip


@pytest.mark.parametrize("doc", CONTACT_EDGE_CASES)
def test_contacts_edge_cases_parse_the_same(doc: object) -> None:
    _same(Stream.CONTACTS, orjson.dumps(doc))


def test_a_score_past_64_bits_parses_the_same() -> None:
    _same(Stream.CONTACTS, orjson.dumps(SURVEY).replace(b'"csat":4', b'"csat":' + b"1" * 30))


def test_the_fast_path_takes_valid_contacts() -> None:
    from schemas.fast_parse import fast_path
    from schemas.parsing import EARLIEST_TS, LATEST_TS, parse_timestamp

    fast = fast_path(Stream.CONTACTS, parse_timestamp, EARLIEST_TS, LATEST_TS)
    assert fast is not None
    assert fast(orjson.dumps([OPENED, RESOLVED, SURVEY]), 5) is not None
    # What it cannot judge goes to the full path: no answer at all, a score out of range.
    assert fast(orjson.dumps(WITHOUT_CSAT), 5) is None
    assert fast(orjson.dumps({**SURVEY, "csat": 6}), 5) is None
