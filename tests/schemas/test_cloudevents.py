"""CloudEvents helpers: deterministic ids, structure, round trip, validation, data schemas."""

import json
from pathlib import Path

import jsonschema
import pytest

from schemas import cloudevents as ce

ROOT = Path(__file__).resolve().parents[2] / "schemas" / "json"


def test_ids_deterministic_and_distinct() -> None:
    a = ce.cloudevent_id("t", "c", "1")
    assert a == ce.cloudevent_id("t", "c", "1")
    assert a != ce.cloudevent_id("t", "c", "2")
    assert ce.cloudevent_id("ab", "c") != ce.cloudevent_id("a", "bc")


def test_structure_and_round_trip() -> None:
    ev = ce.make_cloudevent(type=ce.NOTIFY_DELIVERY_FAILED, source="/x", subject="o1",
                            time=1.5, data={"a": 1}, dataschema="s", id="i")
    assert ev["specversion"] == "1.0" and ev["datacontenttype"] == "application/json"
    assert ev["time"] == "1970-01-01T00:00:01.500Z"
    assert ce.decode(ce.encode(ev)) == ev
    assert ce.KAFKA_HEADERS == [("content-type", b"application/cloudevents+json; charset=UTF-8")]


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"[]", b'{"id":"1","source":"s","type":"t"}',
     b'{"id":"1","source":"s","type":"t","specversion":"0.3"}',
     b'{"id":"","source":"s","type":"t","specversion":"1.0"}',
     b'{"id":"1","source":"s","type":"t","specversion":"1.0","time":"yesterday"}'],
)
def test_decode_rejects(raw: bytes) -> None:
    with pytest.raises(ce.CloudEventError):
        ce.decode(raw)


SCHEMAS = [*sorted(ROOT.glob("notifications/*/v1.json")), ROOT / "alerts/v1.json"]


@pytest.mark.parametrize("path", SCHEMAS)
def test_schema_ids_match_uris(path: Path) -> None:
    doc = json.loads(path.read_text())
    jsonschema.Draft202012Validator.check_schema(doc)
    rel = path.relative_to(ROOT).parent.as_posix()
    assert doc["$id"] == ce.schema_uri(rel)
