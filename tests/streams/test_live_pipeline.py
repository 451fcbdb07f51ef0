"""Quick look at the live pipeline (the fixture is shared with the board and alert tests)."""

from __future__ import annotations

import time

from tests.kafka_harness import sample


def test_live_pipeline_smoke(live_pipeline):
    m = live_pipeline.worker.scrape()
    print({k: v for k, v in m.items() if k[0].startswith(("cxpulse_alerts", "cxpulse_notifications", "cxpulse_rage", "cxpulse_deliveries", "cxpulse_delivery_delays"))})
    assert sample(m, "cxpulse_events_total", stream="clickstream", type="click") > 0
    time.sleep(1)
