"""The deliveries board: on-time delivery by carrier and region, delay predictions against the
delays they missed, notification lead time, with the delivery alerts as annotations."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard, timeseries

from grafana.panels import (
    CARRIER,
    JOB,
    REGION,
    Q,
    alert_annotation,
    bars,
    board,
    per,
    quantile,
    st,
    traffic_light,
    ts,
)
from grafana.targets import DELAYS_MISSED, ON_TIME


def on_time_by_carrier_region() -> timeseries.Panel:
    """The on-time ratio per carrier and region: on this board and the scorecard."""
    return ts(
        "On-time delivery by carrier and region",
        [Q(f"cxpulse:deliveries_on_time:ratio_rate30m{{{CARRIER},{REGION}}}", "{{carrier}} / {{region}}")],
        unit="percentunit",
        min_val=0,
        max_val=1,
        thresholds=traffic_light(ON_TIME),
    )


def build() -> dashboard.Dashboard:
    sel = f"{JOB},{CARRIER},{REGION}"
    on_time = [
        st(
            "On-time delivery (fleet)",
            [Q("cxpulse:deliveries_on_time_fleet:ratio_rate30m")],
            unit="percentunit",
            w=6,
            thresholds=traffic_light(ON_TIME),
        ),
        st("Orders open", [Q(f"sum(cxpulse_orders_open{{{JOB}}})")], w=6),
        st(
            "Delays predicted (last hour)",
            [Q(f"sum(increase(cxpulse_delivery_delays_predicted_total{{{sel}}}[1h]))")],
            w=6,
            decimals=0,
        ),
        st(
            "Delays missed (last hour)",
            [Q(f"sum(increase(cxpulse_delivery_delays_missed_total{{{JOB}}}[1h]))")],
            w=6,
            decimals=0,
            thresholds=traffic_light(DELAYS_MISSED),
            description="Orders whose promise passed with no delay notification.",
        ),
        on_time_by_carrier_region(),
        bars(
            "On-time now by carrier and region",
            [
                Q(
                    f"cxpulse:deliveries_on_time:ratio_rate30m{{{CARRIER},{REGION}}}",
                    "{{carrier}} / {{region}}",
                    instant=True,
                )
            ],
            thresholds=traffic_light(ON_TIME),
        ),
    ]
    flow = [
        ts(
            "Deliveries by outcome (per hour)",
            [Q(per("cxpulse_deliveries_total", by="outcome", sel=sel, scale=3600), "{{outcome}}")],
            stack=True,
        ),
        ts(
            "Delivery status events by status (per hour)",
            [Q(per("cxpulse_delivery_status_total", by="status", sel=sel, scale=3600), "{{status}}")],
        ),
        ts(
            "Delays predicted vs missed (per hour)",
            [
                Q(per("cxpulse_delivery_delays_predicted_total", sel=sel, scale=3600), "predicted (notified)"),
                Q(per("cxpulse_delivery_delays_missed_total", scale=3600), "missed (late, not notified)"),
            ],
            description="Missed delays are fleet-wide (the counter has no carrier/region).",
        ),
        ts(
            "Notification lead time",
            [
                Q(quantile(0.5, "cxpulse_notification_lead_time_seconds", window="1h"), "p50"),
                Q(quantile(0.1, "cxpulse_notification_lead_time_seconds", window="1h"), "p10"),
            ],
            unit="s",
            description="promised_by minus the time the delay notification was sent.",
        ),
        ts(
            "Failed attempts and exceptions (per hour)",
            [
                Q(
                    per("cxpulse_failed_delivery_attempts_total", by="carrier", sel=sel, scale=3600),
                    "failed attempts {{carrier}}",
                ),
                Q(
                    per("cxpulse_delivery_exceptions_total", by="carrier", sel=sel, scale=3600),
                    "exceptions {{carrier}}",
                ),
            ],
        ),
        ts(
            "On-time ratio (per worker, rolling window)",
            [Q(f"cxpulse_on_time_rolling_ratio{{{sel}}}", "{{instance}} {{carrier}} / {{region}}")],
            unit="percentunit",
            min_val=0,
            max_val=1,
        ),
    ]
    return board(
        "cxpulse-deliveries",
        "cxpulse / Deliveries",
        "On-time delivery by carrier and region, delay predictions against misses, notification lead time.",
        [("On time", on_time), ("Flow and delays", flow)],
        variables=("carrier", "region"),
        annotations=[alert_annotation("Delivery alerts", "OnTimeDeliveryDrop|DeliveryDelaysMissed", "orange")],
    )
