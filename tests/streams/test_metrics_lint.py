"""`promtool check metrics` is clean on a live scrape of a real worker (ours and Faust's)."""

from __future__ import annotations

import subprocess

import orjson
import pytest
import requests

from deploy.local import monitoring as ops
from tests.kafka_harness import produce, sample

pytestmark = pytest.mark.kafka


def test_promtool_check_metrics_on_a_live_scrape(kafka_settings, worker):
    s = kafka_settings
    event = {"event_id": "e1", "ts": "2026-03-02T10:00:00Z", "type": "page_view", "session_id": "s", "page": "/a/1"}
    produce(s, [(s.topic_clickstream, b"s", orjson.dumps(event)), (s.topic_contacts, b"c", b"broken")])
    worker.wait_for(lambda m: sample(m, "cxpulse_messages_total", stream="contacts") == 1, what="messages")
    exposition = requests.get(worker.metrics_url, timeout=10).text
    assert "faust_" in exposition and "cxpulse_events_total" in exposition
    promtool = ops.ensure_installed()["promtool"]
    result = subprocess.run([promtool, "check", "metrics"], input=exposition, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
