"""What the live pipeline (simulator -> Kafka -> worker) produced, seen from /metrics."""

from __future__ import annotations

from schemas.models import NOTIFICATION_TYPES
from tests.kafka_harness import sample
from tests.live import MALFORMED


def test_every_notification_type_flows_and_rejects_are_counted(live_pipeline):
    # Candidates travel through cx.signals to the customers agent after the input is processed
    # (the carrier delay is recognised late in the run): wait for them, bounded.
    shorts = [t.rsplit(".", 1)[-1] for t in NOTIFICATION_TYPES]
    m = live_pipeline.worker.wait_for(
        lambda m: all(sample(m, "cxpulse_notifications_total", type=short) > 0 for short in shorts),
        timeout=120,
        what=f"a notification of every type ({', '.join(shorts)})",
    )
    for stream in ("clickstream", "contacts", "deliveries"):
        rejected = sum(
            v for (name, labels), v in m.items()
            if name == "cxpulse_events_rejected_total" and dict(labels)["stream"] == stream
        )  # fmt: skip
        assert rejected == len(MALFORMED)
    for kind in ("rage_clicks", "error_clicks", "dead_clicks"):
        assert sum(v for (name, _), v in m.items() if name == f"cxpulse_{kind}_total") > 0, kind
    assert sample(m, "cxpulse_delivery_delays_predicted_total", carrier="dhl", region="north") > 0
