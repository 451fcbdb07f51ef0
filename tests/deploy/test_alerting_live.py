"""On-call is paged end to end: the simulator's complaint spike, still running when the input
ends, opens an anomaly episode in the worker; the project's ComplaintSpike rule fires in a
real Prometheus after its ``for``; Alertmanager routes the critical alert to the on-call
webhook, where the test's receiver records the page. The same episode is on ``cx.alerts``."""

from __future__ import annotations

import time

import orjson
import requests

from tests.kafka_harness import consume_all, sample

PAGE_TIMEOUT_S = 300.0


def test_complaint_spike_pages_on_call(live_pipeline):
    m = live_pipeline.worker.scrape()
    assert sample(m, "cxpulse_alerts_active", type="complaint_spike") >= 1
    deadline = time.monotonic() + PAGE_TIMEOUT_S
    paged = []
    while time.monotonic() < deadline and not paged:
        paged = [
            alert
            for page in live_pipeline.pages
            if page["receiver"] == "oncall"
            for alert in page.get("alerts", [])
            if alert["labels"].get("alertname") == "ComplaintSpike" and alert["status"] == "firing"
        ]
        time.sleep(2)
    assert paged, f"no ComplaintSpike page within {PAGE_TIMEOUT_S:.0f}s; pages: {live_pipeline.pages}"
    alert = paged[0]
    assert alert["labels"]["severity"] == "critical"
    assert alert["annotations"]["runbook_url"].endswith("complaint-spike.md")
    rules = requests.get(f"{live_pipeline.prometheus_url}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    assert any(a["labels"]["alertname"] == "ComplaintSpike" and a["state"] == "firing" for a in rules)
    # No ticket-level duplicate of the same incident (inhibited by the critical page).
    assert not any(
        a["labels"].get("alertname") == "ComplaintSpike" for p in live_pipeline.pages if p["receiver"] == "ticket"
        for a in p.get("alerts", [])
    )  # fmt: skip


def test_the_spike_episode_is_on_the_alerts_topic(live_pipeline):
    s = live_pipeline.settings
    events = [orjson.loads(r.value) for r in consume_all(s, s.topic_alerts, timeout=20)]
    spikes = [
        e for e in events
        if e["type"] == "cx.alert.complaint_spike" and e["data"]["status"] == "firing"
        and e["data"]["labels"].get("reason") == "delivery"
    ]  # fmt: skip
    (incident,) = [i for i in live_pipeline.truth["incidents"] if i["name"] == "complaint_spike"]
    assert spikes, [e["data"]["explanation"] for e in events]
    first = min(spikes, key=lambda e: e["time"])
    from schemas.cloudevents import parse_rfc3339

    assert 0 <= parse_rfc3339(first["time"]) - incident["start"] <= 300
    assert len({e["id"] for e in events}) == len(events)
