"""CloudEvents format: constants, round trip, validation, data schemas."""

import json
from pathlib import Path

import jsonschema
import pytest

from schemas import cloudevents as ce

ROOT = Path(__file__).resolve().parents[2] / "schemas" / "json"

EVENT = {
    "specversion": "1.0",
    "id": "i",
    "source": "/x",
    "type": "cx.notification.delivery_failed",
    "time": "1970-01-01T00:00:01.500Z",
    "datacontenttype": "application/json",
    "dataschema": "s",
    "subject": "o1",
    "data": {"a": 1},
}


def test_round_trip_and_headers() -> None:
    assert ce.decode(ce.encode(EVENT)) == EVENT
    assert ce.parse_rfc3339(EVENT["time"]) == 1.5
    assert ce.KAFKA_HEADERS == [("content-type", b"application/cloudevents+json; charset=UTF-8")]


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"[]", b'{"id":"1","source":"s","type":"t"}',
     b'{"id":"1","source":"s","type":"t","specversion":"0.3"}',
     b'{"id":"","source":"s","type":"t","specversion":"1.0"}',
     b'{"id":"1","source":"s","type":"t","specversion":"1.0","time":"yesterday"}',
     b'{"id":"1","source":"s","type":"t","specversion":"1.0","subject":7}',
     b'{"id":"1","source":"s","type":"t","specversion":"1.0","data":[1]}'],
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
