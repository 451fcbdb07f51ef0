"""The pipeline-health board: is cxpulse keeping up? Events in, rejected, late and dead-lettered,
consumer lag, workers and partitions, detector and notification output."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from grafana.panels import JOB, Q, alert_annotation, board, higher_is_better, per, quantile, st, traffic_light, ts
from grafana.targets import CONSUMER_LAG, DEADLETTER_RATIO


def build() -> dashboard.Dashboard:
    head = [
        # red with no worker up, green from one: how many are enough depends on the deployment
        st("Workers up", [Q(f"sum(up{{{JOB}}})")], w=6, thresholds=higher_is_better(1, 1)),
        st("Events in (per second)", [Q("sum(cxpulse:events:rate5m)")], w=6),
        st(
            "Dead-letter ratio",
            [Q("max(cxpulse:deadletter:ratio_rate5m)")],
            unit="percentunit",
            w=6,
            thresholds=traffic_light(DEADLETTER_RATIO),
        ),
        st(
            "Consumer lag (messages)",
            [Q("sum(cxpulse:consumer_lag_messages:sum)")],
            w=6,
            thresholds=traffic_light(CONSUMER_LAG),
        ),
    ]
    flow = [
        ts("Events in by stream (per second)", [Q("cxpulse:events:rate5m", "{{stream}}")]),
        ts(
            "Events in by type (per second)",
            [Q(per("cxpulse_events_total", by="stream, type"), "{{stream}} {{type}}")],
        ),
        ts(
            "Rejected events by reason (per second)",
            [Q("cxpulse:events_rejected:rate5m", "{{stream}} {{reason}}")],
        ),
        ts(
            "Late and duplicate events (per second)",
            [
                Q("cxpulse:events_late:rate5m", "late {{stream}}"),
                Q(per("cxpulse_events_duplicate_total", by="stream"), "duplicate {{stream}}"),
            ],
        ),
        ts(
            "Messages processed and dead-lettered (per second)",
            [
                Q("cxpulse:messages:rate5m", "messages {{stream}}"),
                Q(per("cxpulse_deadletters_total", by="stream"), "dead letters {{stream}}"),
            ],
        ),
        ts(
            "Dead-letter ratio by stream",
            [Q("cxpulse:deadletter:ratio_rate5m", "{{stream}}")],
            unit="percentunit",
            thresholds=traffic_light(DEADLETTER_RATIO),
        ),
    ]
    workers = [
        ts("Consumer lag by topic", [Q("cxpulse:consumer_lag_messages:sum", "{{topic}}")]),
        ts(
            "Consumer lag by partition",
            [Q(f"cxpulse_consumer_lag_messages{{{JOB}}}", "{{topic}}[{{partition}}] {{instance}}")],
        ),
        ts(
            "Assigned partitions by worker",
            [Q(f"sum by (instance) (cxpulse_assigned_partitions{{{JOB}}})", "{{instance}}")],
            w=8,
        ),
        ts(
            "Event delay p99 (processing minus event time)",
            [Q(quantile(0.99, "cxpulse_event_delay_seconds", by="stream", window="5m"), "{{stream}}")],
            unit="s",
            w=8,
        ),
        ts(
            "Event-time clock behind wall clock",
            [Q(f"time() - max by (stream) (cxpulse_event_time_seconds{{{JOB}}})", "{{stream}}")],
            unit="s",
            w=8,
            description="Large and growing for live traffic means the stream stalled; replays "
            "and simulations run in the past, so this is expected there.",
        ),
    ]
    output = [
        ts(
            "Anomaly alerts raised by type (per hour)",
            [Q(per("cxpulse_alerts_total", by="type", scale=3600), "{{type}}")],
            w=8,
        ),
        ts(
            "Notifications sent by type (per hour)",
            [Q(per("cxpulse_notifications_total", by="type", scale=3600), "{{type}}")],
            w=8,
            stack=True,
        ),
        ts(
            "Notifications suppressed by reason (per hour)",
            [Q(per("cxpulse_notifications_suppressed_total", by="reason", scale=3600), "{{reason}}")],
            w=8,
        ),
    ]
    return board(
        "cxpulse-pipeline",
        "cxpulse / Pipeline health",
        "Is cxpulse keeping up: events in, rejected, late and dead-lettered, consumer lag, workers "
        "and partitions, detector and notification output.",
        [("Health", head), ("Input", flow), ("Workers and lag", workers), ("Output", output)],
        annotations=[
            alert_annotation(
                "Pipeline alerts",
                "CxpulseWorkerDown|CxpulseWorkersAbsent|KafkaUnreachable|NoEventsArriving|ConsumerLagGrowing|DeadLetterRateHigh",
                "purple",
            )
        ],
    )
