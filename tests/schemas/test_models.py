"""Model timestamps on the wire, and the output event type names."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from schemas.models import ALERT_TYPES, NOTIFICATION_TYPES, rfc3339, wire_time
from schemas.parsing import parse_timestamp

JSON = Path(__file__).resolve().parents[2] / "schemas" / "json"


@pytest.mark.parametrize(
    ("ts", "text"),
    [
        (0.0, "1970-01-01T00:00:00Z"),
        (1.25, "1970-01-01T00:00:01.250Z"),
        (1767225600.0009, "2026-01-01T00:00:00.000Z"),  # below the millisecond: cut, not rounded
        (1767225600.4567, "2026-01-01T00:00:00.456Z"),
    ],
)
def test_rfc3339(ts: float, text: str) -> None:
    assert rfc3339(ts) == text


def test_wire_time_is_what_a_reader_parses_back() -> None:
    rng = random.Random(7)
    stamps = [rng.uniform(1.7e9, 1.8e9) for _ in range(2000)]
    stamps += [round(t, 3) + d for t in stamps[:500] for d in (0.0, 0.0005, -0.0005, 1e-7)]
    for ts in stamps:
        assert wire_time(ts) == parse_timestamp(rfc3339(ts)), ts
        assert wire_time(wire_time(ts)) == wire_time(ts)


def test_every_output_type_has_its_data_schema() -> None:
    assert all(t.startswith("cx.alert.") for t in ALERT_TYPES) and (JSON / "alerts" / "v1.json").is_file()
    for event_type in NOTIFICATION_TYPES:
        prefix, short = event_type.rsplit(".", 1)
        assert prefix == "cx.notification" and (JSON / "notifications" / short / "v1.json").is_file(), event_type
