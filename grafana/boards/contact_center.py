"""The contact-center board: contacts by channel and reason, complaint spikes (with the detector's
score and the alert annotations), resolution times and survey results."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from grafana.panels import CHANNEL, JOB, REASON, Q, alert_annotation, board, per, traffic_light, ts
from grafana.targets import FCR

#: The contact variables, as the selector of the contact-volume panels.
CHANNEL_AND_REASON = f"{CHANNEL},{REASON}"


def build() -> dashboard.Dashboard:
    volume = [
        ts(
            "Contacts opened by channel (per hour)",
            [Q(f"sum by (channel) (cxpulse:contacts_opened:rate5m{{{CHANNEL_AND_REASON}}}) * 3600", "{{channel}}")],
            stack=True,
        ),
        ts(
            "Contacts opened by reason (per hour)",
            [Q(f"sum by (reason) (cxpulse:contacts_opened:rate5m{{{CHANNEL_AND_REASON}}}) * 3600", "{{reason}}")],
            stack=True,
        ),
        ts(
            "Complaints by reason and channel (per hour)",
            [Q(f"cxpulse:complaints:rate5m{{{REASON},{CHANNEL}}} * 3600", "{{reason}} / {{channel}}")],
        ),
        ts(
            "Complaint-spike anomaly score",
            [
                Q(
                    f'max by (series) (cxpulse_anomaly_score{{{JOB},detector="complaint_spike"}})',
                    "{{series}}",
                ),
                Q(
                    # the gauge appears with the first episode; until then there are 0 open
                    f'sum(cxpulse_alerts_active{{{JOB},type=~"(cx\\\\.alert\\\\.)?complaint_spike"}}) or vector(0)',
                    "open episodes",
                ),
            ],
            min_val=0,
            description="Detector score (0-1) per watched series and open complaint-spike "
            "episodes; ComplaintSpike alerts are annotated.",
        ),
    ]
    quality = [
        ts(
            "Resolution time quantiles",
            [Q("cxpulse:resolution_time_seconds:quantile_rate1h", "p{{quantile}}")],
            unit="s",
            description="contact_opened to contact_resolved, from the histogram, 1 hour.",
        ),
        ts(
            "Resolution time p90 by channel",
            [Q(f"cxpulse:resolution_time_seconds_by_channel:p90_rate1h{{{CHANNEL}}}", "{{channel}}")],
            unit="s",
        ),
        ts(
            "First-contact resolution",
            [Q("cxpulse:fcr:ratio_rate1h", "FCR")],
            unit="percentunit",
            min_val=0,
            max_val=1,
            w=8,
            thresholds=traffic_light(FCR),
        ),
        ts(
            "CSAT and CES",
            [
                Q("cxpulse:csat_score:mean_rate15m", "CSAT (1-5)"),
                Q("cxpulse:ces_score:mean_rate15m", "CES (1-7)"),
            ],
            w=8,
        ),
        ts(
            "NPS answers by category (per hour)",
            [Q(per("cxpulse_nps_responses_total", by="category", scale=3600), "{{category}}")],
            w=8,
            stack=True,
        ),
    ]
    return board(
        "cxpulse-contacts",
        "cxpulse / Contact center",
        "Support contacts by channel and reason, complaint spikes (with alert annotations), "
        "resolution times and survey results.",
        [("Volume and complaints", volume), ("Resolution and surveys", quality)],
        variables=("channel", "reason"),
        annotations=[
            alert_annotation("Complaint spikes", "ComplaintSpike", "red"),
            alert_annotation("Survey alerts", "CsatDrop|NpsDrop", "yellow"),
        ],
    )
