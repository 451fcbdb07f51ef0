"""The CX scorecard: CSAT, NPS, CES, FCR, on-time delivery and complaints against their targets,
with the trends behind them and the CX alerts as annotations (the default home board)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from grafana.boards.deliveries import on_time_by_carrier_region
from grafana.panels import (
    CHANNEL,
    JOB,
    PAGE,
    REASON,
    Q,
    alert_annotation,
    board,
    per,
    st,
    traffic_light,
    ts,
)
from grafana.targets import CES, COMPLAINT_RATE, CSAT, FCR, NPS, ON_TIME


def build() -> dashboard.Dashboard:
    head = [
        st(
            "CSAT (1-5)",
            [Q("cxpulse:csat_score:mean_rate15m")],
            decimals=2,
            thresholds=traffic_light(CSAT),
            description=f"Mean CSAT answer over 15 minutes, all workers. Target {CSAT.goal}; "
            f"{CSAT.alert} fires under {CSAT.bad}.",
        ),
        st(
            "NPS",
            [Q("cxpulse:nps_score:rate1h")],
            decimals=0,
            thresholds=traffic_light(NPS),
            description=f"% promoters - % detractors over 1 hour. Target {NPS.goal:.0f}; "
            f"{NPS.alert} fires under {NPS.bad:.0f}.",
        ),
        st(
            "CES (1-7, lower is better)",
            [Q("cxpulse:ces_score:mean_rate15m")],
            decimals=2,
            thresholds=traffic_light(CES),
            description=f"Mean customer-effort answer over 15 minutes. Target under {CES.goal}.",
        ),
        st(
            "First-contact resolution",
            [Q("cxpulse:fcr:ratio_rate1h")],
            unit="percentunit",
            thresholds=traffic_light(FCR),
            description=f"Resolved on first contact / resolved, 1 hour. Target {FCR.goal:.0%}.",
        ),
        st(
            "On-time delivery",
            [Q("cxpulse:deliveries_on_time_fleet:ratio_rate30m")],
            unit="percentunit",
            thresholds=traffic_light(ON_TIME),
            description=f"Delivered on time / delivered, 30 minutes. Target {ON_TIME.goal:.0%}.",
        ),
        st(
            "Complaint rate",
            [Q("cxpulse:complaints:ratio_rate1h")],
            unit="percentunit",
            thresholds=traffic_light(COMPLAINT_RATE),
            description=f"Complaints per contact opened, 1 hour. Target under {COMPLAINT_RATE.goal:.0%}.",
        ),
    ]
    trends = [
        ts(
            "CSAT and CES",
            [
                Q("cxpulse:csat_score:mean_rate15m", "CSAT (1-5)"),
                Q("cxpulse:ces_score:mean_rate15m", "CES (1-7)"),
            ],
            min_val=1,
            max_val=7,
            description="Fleet means over 15 minutes (rate(sum)/rate(count)).",
        ),
        ts(
            "NPS over time",
            [Q("cxpulse:nps_score:rate1h", "NPS")],
            min_val=-100,
            max_val=100,
            thresholds=traffic_light(NPS),
            description="NPS over the last hour of answers.",
        ),
        on_time_by_carrier_region(),
        ts(
            "Complaints by reason (per hour)",
            [Q(f"sum by (reason) (cxpulse:complaints:rate5m{{{REASON},{CHANNEL}}}) * 3600", "{{reason}}")],
            stack=True,
        ),
        ts(
            "Frustration signals (per minute)",
            [
                Q(f"sum(cxpulse:rage_clicks:rate5m{{{PAGE}}}) * 60", "rage clicks"),
                Q(f"sum(cxpulse:dead_clicks:rate5m{{{PAGE}}}) * 60", "dead clicks"),
                Q(f"sum(cxpulse:error_clicks:rate5m{{{PAGE}}}) * 60", "error clicks"),
                Q(
                    per("cxpulse_frustration_threshold_crossings_total", scale=60),
                    "customers over frustration threshold",
                ),
            ],
            description="Rage, dead and error clicks on the selected pages, and customers whose "
            "frustration score crossed the threshold.",
        ),
        ts(
            "Open anomaly episodes",
            [Q(f"sum by (type) (cxpulse_alerts_active{{{JOB}}})", "{{type}}")],
            description="Episodes currently open per detector type (ComplaintSpike reads these).",
        ),
    ]
    return board(
        "cxpulse-scorecard",
        "cxpulse / CX scorecard",
        "The customer-experience scorecard: CSAT, NPS, CES, FCR, on-time delivery, complaints and "
        "frustration signals against their targets.",
        [("Scorecard", head), ("Trends", trends)],
        variables=("carrier", "region", "channel", "reason", "page"),
        annotations=[alert_annotation("CX alerts", "ComplaintSpike|CsatDrop|NpsDrop|OnTimeDeliveryDrop", "red")],
    )
