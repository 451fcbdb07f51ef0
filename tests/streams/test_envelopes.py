"""Findings to CloudEvents: the bytes consumers have always received, sources from settings.

``RECORDED`` holds events written by the code before the detectors stopped building envelopes
(issue 9), for fixed findings of every kind: the envelope module must keep writing them byte for
byte. The events are also checked against their data schemas and read back with the
CloudEvents SDK, an implementation of the format that is not ours.
"""

from __future__ import annotations

import jsonschema
import pytest
from cloudevents.core.formats.json import JSONFormat

from detectors.contact_rules import Detractor, RepeatContact
from detectors.delivery_delay import DelayPredicted, DeliveryFailed
from detectors.episodes import AlertEvent, EpisodeTracker
from detectors.frustration_score import FrustrationCrossed
from schemas import cloudevents as ce
from schemas.ids import alert_id
from schemas.parsing import load_schema
from streams.envelopes import Component, Envelopes
from streams.settings import Settings

FINDINGS = {
    "delivery_delayed": DelayPredicted(
        "o-1", "c-1", "dhl", "north", 1767225600.4, 1767240000.0, 0.971234, ("no scan for 30 h",), 1767200000.0004567
    ),
    "delivery_failed": DeliveryFailed("o-2", "c-1", "ups", "south", "failed_attempt", 1767200000.25),
    "repeat_contact": RepeatContact(
        "c-2", ("k1", "k2", "k3"), ("billing", None, "delivery"), ("chat", "email", None), 1767200001.5
    ),
    "detractor_followup": Detractor("c-3", None, 1, None, None, "billing", 1767200002.0),
    "frustration_outreach": FrustrationCrossed(
        "c-4", 8.564123, 1767200003.0, (("complaint", 1767190000.0, "k1"), ("detractor", 1767200003.0, "k2"))
    ),
}
SERIES = 'complaints{reason="billing"}'
ALERT = AlertEvent(
    "firing", alert_id(SERIES, 1767225600.0), SERIES, {"reason": "billing"}, "complaint_spike",
    1767225600.0, 1767225540.0, 1767225660.0, 42.0, 9.0, 0.97, "warning",
    "Complaints about billing: 42/min vs ~9.0/min expected since 00:00 UTC (score 0.97)",
)  # fmt: skip

RECORDED = {
    "delivery_delayed": (
        b'{"specversion":"1.0","id":"9969bcbe-3e81-52bc-b9e2-cc84ad924cd9","source":"/cxpulse/deliveries",'
        b'"type":"cx.notification.delivery_delayed","time":"2025-12-31T16:53:20.000Z","datacontenttype":"a'
        b'pplication/json","dataschema":"https://cxpulse.dev/schemas/notifications/delivery_delayed/v1.jso'
        b'n","subject":"o-1","data":{"order_id":"o-1","customer_id":"c-1","carrier":"dhl","region":"north"'
        b',"promised_by":"2026-01-01T00:00:00.400Z","predicted_delivery":"2026-01-01T04:00:00Z","evidence"'
        b':["no scan for 30 h"],"confidence":0.9712,"lead_time_seconds":25600.4}}'
    ),
    "delivery_failed": (
        b'{"specversion":"1.0","id":"5f5b24ff-a7e1-5e2b-9c2b-ded31fbb6593","source":"/cxpulse/deliveries",'
        b'"type":"cx.notification.delivery_failed","time":"2025-12-31T16:53:20.250Z","datacontenttype":"ap'
        b'plication/json","dataschema":"https://cxpulse.dev/schemas/notifications/delivery_failed/v1.json"'
        b',"subject":"o-2","data":{"order_id":"o-2","customer_id":"c-1","carrier":"ups","region":"south","'
        b'status":"failed_attempt","what_happened":"The carrier tried to deliver the order but could not c'
        b'omplete the delivery.","next_step":"Choose a new delivery day or a pick-up point in your order t'
        b'racking page."}}'
    ),
    "repeat_contact": (
        b'{"specversion":"1.0","id":"5cb151e0-ac92-5a49-949e-5e63a5ccac9f","source":"/cxpulse/contacts","t'
        b'ype":"cx.notification.repeat_contact","time":"2025-12-31T16:53:21.500Z","datacontenttype":"appli'
        b'cation/json","dataschema":"https://cxpulse.dev/schemas/notifications/repeat_contact/v1.json","su'
        b'bject":"k3","data":{"customer_id":"c-2","contact_ids":["k1","k2","k3"],"reasons":["billing",null'
        b',"delivery"],"channels":["chat","email",null]}}'
    ),
    "detractor_followup": (
        b'{"specversion":"1.0","id":"358a29d3-b622-5b65-8291-6df034157530","source":"/cxpulse/contacts","t'
        b'ype":"cx.notification.detractor_followup","time":"2025-12-31T16:53:22Z","datacontenttype":"appli'
        b'cation/json","dataschema":"https://cxpulse.dev/schemas/notifications/detractor_followup/v1.json"'
        b',"data":{"customer_id":"c-3","contact_id":null,"scores":{"csat":1,"nps":null,"ces":null},"reason'
        b'":"billing"}}'
    ),
    "frustration_outreach": (
        b'{"specversion":"1.0","id":"8e4d5c27-d4da-5921-b829-da87defd67db","source":"/cxpulse/customers","'
        b'type":"cx.notification.frustration_outreach","time":"2025-12-31T16:53:23Z","datacontenttype":"ap'
        b'plication/json","dataschema":"https://cxpulse.dev/schemas/notifications/frustration_outreach/v1.'
        b'json","data":{"customer_id":"c-4","score":8.5641,"signals":[{"kind":"complaint","time":"2025-12-'
        b'31T14:06:40Z","source_id":"k1"},{"kind":"detractor","time":"2025-12-31T16:53:23Z","source_id":"k'
        b'2"}]}}'
    ),
    "alert": (
        b'{"specversion":"1.0","id":"5bb00bb9-1d86-5988-ae5c-9b0d3c5acdf7","source":"/cxpulse/contacts","t'
        b'ype":"cx.alert.complaint_spike","time":"2026-01-01T00:01:00Z","datacontenttype":"application/jso'
        b'n","dataschema":"https://cxpulse.dev/schemas/alerts/v1.json","subject":"complaints{reason=\\"bill'
        b'ing\\"}","data":{"series":"complaints{reason=\\"billing\\"}","labels":{"reason":"billing"},"observe'
        b'd":42.0,"expected":9.0,"score":0.97,"window_start":"2025-12-31T23:59:00Z","window_end":"2026-01-'
        b'01T00:01:00Z","episode_start":"2026-01-01T00:00:00Z","severity":"warning","status":"firing","exp'
        b'lanation":"Complaints about billing: 42/min vs ~9.0/min expected since 00:00 UTC (score 0.97)"}}'
    ),
}


def events(envelopes: Envelopes) -> dict[str, dict]:
    out = {name: envelopes.notification(finding.candidate()) for name, finding in FINDINGS.items()}
    out["alert"] = envelopes.alert(ALERT, Component.CONTACTS)
    return out


@pytest.mark.parametrize("name", list(RECORDED))
def test_default_settings_write_the_recorded_bytes(name: str) -> None:
    assert ce.encode(events(Envelopes(Settings().source_id))[name]) == RECORDED[name]


def test_source_id_prefixes_every_source() -> None:
    assert Settings().source_id == "/cxpulse"
    sources = {name: event["source"] for name, event in events(Envelopes("urn:shop:eu/")).items()}
    assert sources == {
        "delivery_delayed": "urn:shop:eu/deliveries",
        "delivery_failed": "urn:shop:eu/deliveries",
        "repeat_contact": "urn:shop:eu/contacts",
        "detractor_followup": "urn:shop:eu/contacts",
        "frustration_outreach": "urn:shop:eu/customers",
        "alert": "urn:shop:eu/contacts",
    }
    assert Envelopes("/").sources[Component.CLICKSTREAM] == "/clickstream"
    with pytest.raises(ValueError):
        Settings(source_id="")


def test_alert_events_of_an_episode_share_the_key_not_the_id() -> None:
    def episode() -> list[AlertEvent]:
        tracker = EpisodeTracker("s", clear_steps=1)
        steps = [(9.0, 1.0, 0.95), (1.0, 1.0, 0.0)]
        found = [tracker.step(60.0 * i, 60.0 * i + 60, o, x, s) for i, (o, x, s) in enumerate(steps)]
        return [e for e in found if e is not None]

    envelopes = Envelopes("/cxpulse")
    first, again = episode(), episode()
    fired, resolved = (envelopes.alert(e, Component.CLICKSTREAM) for e in first)
    assert first[0].alert_id == first[1].alert_id
    assert fired["id"] != resolved["id"]
    assert [fired["data"]["status"], resolved["data"]["status"]] == ["firing", "resolved"]
    assert [envelopes.alert(e, Component.CLICKSTREAM)["id"] for e in again] == [fired["id"], resolved["id"]]


@pytest.mark.parametrize("name", list(RECORDED))
def test_events_are_valid_and_read_the_same_by_the_cloudevents_sdk(name: str) -> None:
    event = events(Envelopes("/cxpulse"))[name]
    raw = ce.encode(event)
    assert ce.decode(raw) == event
    schema = load_schema("alerts" if name == "alert" else f"notifications/{name}")
    assert event["dataschema"] == schema["$id"]
    jsonschema.Draft202012Validator(schema).validate(event["data"])
    read = JSONFormat().read(None, raw)
    attributes = read.get_attributes()
    assert {k: attributes[k] for k in ("specversion", "id", "source", "type", "datacontenttype", "dataschema")} == {
        k: event[k] for k in ("specversion", "id", "source", "type", "datacontenttype", "dataschema")
    }
    assert read.get_subject() == event.get("subject")
    assert read.get_time() is not None and read.get_time().timestamp() == ce.parse_rfc3339(event["time"])
    assert read.get_data() == event["data"]
