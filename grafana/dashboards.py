"""The cxpulse Grafana boards, as code (grafana-foundation-sdk, Grafana 11 builds).

Every board reads the Prometheus datasource provisioned with uid :data:`DATASOURCE_UID`
(``grafana/provisioning/datasources/prometheus.yaml``), mostly through the recording rules of
``deploy/prometheus/rules/recording.yml`` so boards and alerts show the same numbers.
:func:`all_dashboards` returns ``{file stem: dashboard}``; ``grafana/generate.py`` writes them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.builders import bargauge, dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.builders.common import ReduceDataOptions, VizLegendOptions
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.common import (
    BarGaugeDisplayMode,
    BigValueColorMode,
    BigValueGraphMode,
    LegendDisplayMode,
    LegendPlacement,
)

DATASOURCE_UID = "cxpulse-prometheus"
DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
TAGS = ["cxpulse"]
JOB = 'job="cxpulse"'

#: Scorecard targets (also the alert thresholds' references in deploy/prometheus/rules/alerts.yml).
TARGETS = {
    "csat": 4.2,  # mean 1-5; alert CsatDrop under 3.5
    "csat_alert": 3.5,
    "nps": 30.0,  # -100..100; alert NpsDrop under 0
    "nps_alert": 0.0,
    "ces": 3.0,  # mean 1-7, lower is better; red over 4.5
    "ces_bad": 4.5,
    "fcr": 0.70,  # ratio; red under 0.6
    "fcr_bad": 0.60,
    "on_time": 0.95,  # ratio; alert OnTimeDeliveryDrop under 0.85
    "on_time_alert": 0.85,
    "complaint_rate": 0.05,  # complaints per contact; red over 0.10
    "complaint_rate_bad": 0.10,
    "client_error_ratio": 0.02,  # per page view; alert ClientErrorStorm over 0.10 on a page
    "client_error_ratio_alert": 0.10,
}

# Variable filters used in expressions.
CARRIER = 'carrier=~"$carrier"'
REGION = 'region=~"$region"'
CHANNEL = 'channel=~"$channel"'
REASON = 'reason=~"$reason"'
PAGE = 'page=~"$page"'
CR = f"{CHANNEL},{REASON}"
RATE_INTERVAL = "$__rate_interval"


def per(
    metric: str, *, by: str = "", sel: str = JOB, window: str = RATE_INTERVAL, scale: int = 1
) -> str:
    """``sum [by (...)] (rate(metric{sel}[window])) [* scale]``: a rate summed over workers."""
    group = f" by ({by}) " if by else ""
    expr = f"sum{group}(rate({metric}{{{sel}}}[{window}]))"
    return f"{expr} * {scale}" if scale != 1 else expr


def quantile(q: float, histogram: str, *, by: str = "", window: str = "1h") -> str:
    """``histogram_quantile`` over the fleet's buckets of ``histogram`` (optionally by labels)."""
    labels = f"{by}, le" if by else "le"
    return (
        f"histogram_quantile({q}, sum by ({labels}) (rate({histogram}_bucket{{{JOB}}}[{window}])))"
    )


@dataclass(frozen=True)
class Q:
    """One Prometheus query of a panel."""

    expr: str
    legend: str = ""
    instant: bool = False


def _targets(panel, queries: Sequence[Q]):
    for i, q in enumerate(queries):
        target = (
            prometheus.Dataquery().expr(q.expr).ref_id(chr(ord("A") + i)).datasource(DATASOURCE)
        )
        if q.legend:
            target = target.legend_format(q.legend)
        target = target.instant() if q.instant else target.range()
        panel = panel.with_target(target)
    return panel


def _thresholds(steps: Sequence[tuple[float | None, str]]) -> dashboard.ThresholdsConfig:
    return (
        dashboard.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=v, color=c) for v, c in steps])
    )


def higher_is_better(bad: float, target: float) -> dashboard.ThresholdsConfig:
    """Red under ``bad``, yellow under ``target``, green at or over the target."""
    return _thresholds([(None, "red"), (bad, "yellow"), (target, "green")])



def on_time_by_carrier_region(t: dict[str, float]) -> timeseries.Panel:
    """The on-time ratio per carrier and region: on the scorecard and the deliveries board."""
    return ts(
        "On-time delivery by carrier and region",
        [Q(f"cxpulse:deliveries_on_time:ratio_rate30m{{{CARRIER},{REGION}}}", "{{carrier}} / {{region}}")],
        unit="percentunit",
        min_val=0,
        max_val=1,
        thresholds=higher_is_better(t["on_time_alert"], t["on_time"]),
    )

def lower_is_better(target: float, bad: float) -> dashboard.ThresholdsConfig:
    """Green under ``target``, yellow under ``bad``, red at or over ``bad``."""
    return _thresholds([(None, "green"), (target, "yellow"), (bad, "red")])


def ts(
    title: str,
    queries: Sequence[Q],
    *,
    unit: str = "short",
    description: str = "",
    w: int = 12,
    h: int = 8,
    thresholds: dashboard.ThresholdsConfig | None = None,
    min_val: float | None = None,
    max_val: float | None = None,
    stack: bool = False,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(w)
        .height(h)
        .line_width(1)
        .fill_opacity(10)
        .legend(
            VizLegendOptions()
            .display_mode(LegendDisplayMode.TABLE)
            .placement(LegendPlacement.RIGHT if w >= 12 else LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
        )
    )
    if stack:
        from grafana_foundation_sdk.builders.common import StackingConfig
        from grafana_foundation_sdk.models.common import StackingMode

        panel = panel.stacking(StackingConfig().mode(StackingMode.NORMAL))
    if thresholds is not None:
        panel = panel.thresholds(thresholds)
    if min_val is not None:
        panel = panel.min(min_val)
    if max_val is not None:
        panel = panel.max(max_val)
    return _targets(panel, queries)


def st(
    title: str,
    queries: Sequence[Q],
    *,
    unit: str = "short",
    description: str = "",
    w: int = 4,
    h: int = 5,
    thresholds: dashboard.ThresholdsConfig | None = None,
    decimals: int | None = None,
) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(w)
        .height(h)
        .color_mode(BigValueColorMode.BACKGROUND)
        .graph_mode(BigValueGraphMode.AREA)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    if thresholds is not None:
        panel = panel.thresholds(thresholds)
    if decimals is not None:
        panel = panel.decimals(decimals)
    return _targets(panel, queries)


def bars(
    title: str,
    queries: Sequence[Q],
    *,
    unit: str = "percentunit",
    description: str = "",
    w: int = 12,
    h: int = 8,
    thresholds: dashboard.ThresholdsConfig | None = None,
) -> bargauge.Panel:
    panel = (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(w)
        .height(h)
        .min(0)
        .display_mode(BarGaugeDisplayMode.GRADIENT)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    if unit == "percentunit":
        panel = panel.max(1)
    if thresholds is not None:
        panel = panel.thresholds(thresholds)
    return _targets(panel, queries)


def variable(name: str, label: str, metric: str) -> dashboard.QueryVariable:
    """Multi-value ``label_values`` variable with an "All" option matching ``.*``."""
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(
            {
                "query": f"label_values({metric}, {name})",
                "refId": "PrometheusVariableQueryEditor-VariableQuery",
            }
        )
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


VARIABLES = {
    "carrier": lambda: variable("carrier", "Carrier", "cxpulse_deliveries_total"),
    "region": lambda: variable("region", "Region", "cxpulse_deliveries_total"),
    "channel": lambda: variable("channel", "Channel", "cxpulse_contacts_opened_total"),
    "reason": lambda: variable("reason", "Reason", "cxpulse_contacts_opened_total"),
    "page": lambda: variable("page", "Page", "cxpulse_page_views_total"),
}


def alert_annotation(name: str, alertnames: str, color: str) -> dashboard.AnnotationQuery:
    """Grafana annotation from Prometheus' ALERTS series (firing alerts matching ``alertnames``)."""
    return (
        dashboard.AnnotationQuery()
        .name(name)
        .datasource(DATASOURCE)
        .enable(True)
        .icon_color(color)
        .expr(f'ALERTS{{alertname=~"{alertnames}",alertstate="firing"}}')
    )


#: Prometheus-annotation fields the SDK has no builder method for; added by :func:`to_json`.
ANNOTATION_EXTRAS = {"step": "30s", "titleFormat": "{{alertname}}", "useValueForTime": False}


def board(
    uid: str,
    title: str,
    description: str,
    rows: Sequence[tuple[str, Sequence]],
    variables: Sequence[str] = (),
    annotations: Sequence[dashboard.AnnotationQuery] = (),
) -> dashboard.Dashboard:
    d = (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .editable()
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .link(
            dashboard.DashboardLink("cxpulse boards")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags(TAGS)
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )
    for name in variables:
        d = d.with_variable(VARIABLES[name]())
    for annotation in annotations:
        d = d.annotation(annotation)
    for row_title, panels in rows:
        d = d.with_row(dashboard.Row(row_title))
        for panel in panels:
            d = d.with_panel(panel)
    return d


# --------------------------------------------------------------------------- boards


def scorecard() -> dashboard.Dashboard:
    t = TARGETS
    head = [
        st(
            "CSAT (1-5)",
            [Q("cxpulse:csat_score:mean_rate15m")],
            decimals=2,
            thresholds=higher_is_better(t["csat_alert"], t["csat"]),
            description=f"Mean CSAT answer over 15 minutes, all workers. Target {t['csat']}; "
            f"CsatDrop fires under {t['csat_alert']}.",
        ),
        st(
            "NPS",
            [Q("cxpulse:nps_score:rate1h")],
            decimals=0,
            thresholds=higher_is_better(t["nps_alert"], t["nps"]),
            description=f"% promoters - % detractors over 1 hour. Target {t['nps']:.0f}; "
            "NpsDrop fires under 0.",
        ),
        st(
            "CES (1-7, lower is better)",
            [Q("cxpulse:ces_score:mean_rate15m")],
            decimals=2,
            thresholds=lower_is_better(t["ces"], t["ces_bad"]),
            description=f"Mean customer-effort answer over 15 minutes. Target under {t['ces']}.",
        ),
        st(
            "First-contact resolution",
            [Q("cxpulse:fcr:ratio_rate1h")],
            unit="percentunit",
            thresholds=higher_is_better(t["fcr_bad"], t["fcr"]),
            description=f"Resolved on first contact / resolved, 1 hour. Target {t['fcr']:.0%}.",
        ),
        st(
            "On-time delivery",
            [Q("cxpulse:deliveries_on_time_fleet:ratio_rate30m")],
            unit="percentunit",
            thresholds=higher_is_better(t["on_time_alert"], t["on_time"]),
            description=f"Delivered on time / delivered, 30 minutes. Target {t['on_time']:.0%}.",
        ),
        st(
            "Complaint rate",
            [Q("cxpulse:complaints:ratio_rate1h")],
            unit="percentunit",
            thresholds=lower_is_better(t["complaint_rate"], t["complaint_rate_bad"]),
            description="Complaints per contact opened, 1 hour. "
            f"Target under {t['complaint_rate']:.0%}.",
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
            thresholds=higher_is_better(t["nps_alert"], t["nps"]),
            description="NPS over the last hour of answers.",
        ),
        on_time_by_carrier_region(t),
        ts(
            "Complaints by reason (per hour)",
            [
                Q(
                    f"sum by (reason) (cxpulse:complaints:rate5m{{{REASON},{CHANNEL}}}) * 3600",
                    "{{reason}}",
                )
            ],
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
        annotations=[
            alert_annotation(
                "CX alerts", "ComplaintSpike|CsatDrop|NpsDrop|OnTimeDeliveryDrop", "red"
            )
        ],
    )


def digital() -> dashboard.Dashboard:
    t = TARGETS
    overview = [
        st("Active sessions", [Q(f"sum(cxpulse_active_sessions{{{JOB}}})")], w=6),
        st(
            "Sessions started (per minute)",
            [Q(per("cxpulse_sessions_started_total", scale=60))],
            w=6,
        ),
        st(
            "Client error ratio",
            [Q("cxpulse:client_errors:ratio_rate5m")],
            unit="percentunit",
            w=6,
            thresholds=lower_is_better(t["client_error_ratio"], t["client_error_ratio_alert"]),
        ),
        st(
            "Failed-login streaks (per hour)",
            [Q(per("cxpulse_failed_login_streaks_total", scale=3600))],
            w=6,
            description="Streaks of 3+ failed logins within 5 minutes.",
        ),
    ]
    pages = [
        ts(
            "Page views by page (per minute)",
            [Q(f"cxpulse:page_views:rate5m{{{PAGE}}} * 60", "{{page}}")],
        ),
        ts(
            "Client errors per page view, by page",
            [Q(f"cxpulse:client_errors_by_page:ratio_rate5m{{{PAGE}}}", "{{page}}")],
            unit="percentunit",
            thresholds=lower_is_better(t["client_error_ratio"], t["client_error_ratio_alert"]),
        ),
        ts(
            "Rage clicks by page (per minute)",
            [Q(f"cxpulse:rage_clicks:rate5m{{{PAGE}}} * 60", "{{page}}")],
            w=8,
        ),
        ts(
            "Dead clicks by page (per minute)",
            [Q(f"cxpulse:dead_clicks:rate5m{{{PAGE}}} * 60", "{{page}}")],
            w=8,
        ),
        ts(
            "Error clicks by page (per minute)",
            [Q(f"cxpulse:error_clicks:rate5m{{{PAGE}}} * 60", "{{page}}")],
            w=8,
        ),
    ]
    logins = [
        ts(
            "Logins by outcome (per minute)",
            [Q("cxpulse:logins:rate5m * 60", "{{outcome}}")],
            stack=True,
        ),
        ts(
            "Client error ratio (per worker, rolling window)",
            [Q(f"cxpulse_client_error_rolling_ratio{{{JOB}}}", "{{instance}}")],
            unit="percentunit",
            description="Each worker's own view over CXPULSE_WINDOW_SECONDS of event time.",
        ),
    ]
    return board(
        "cxpulse-digital",
        "cxpulse / Digital experience",
        "Web and app experience: sessions, page views, client errors, rage/dead/error clicks by "
        "page, logins.",
        [("Overview", overview), ("Pages", pages), ("Logins and sessions", logins)],
        variables=("page",),
        annotations=[
            alert_annotation("Digital alerts", "RageClickStorm|ClientErrorStorm", "orange")
        ],
    )


def contact_center() -> dashboard.Dashboard:
    t = TARGETS
    volume = [
        ts(
            "Contacts opened by channel (per hour)",
            [
                Q(
                    f"sum by (channel) (cxpulse:contacts_opened:rate5m{{{CR}}}) * 3600",
                    "{{channel}}",
                )
            ],
            stack=True,
        ),
        ts(
            "Contacts opened by reason (per hour)",
            [
                Q(
                    f"sum by (reason) (cxpulse:contacts_opened:rate5m{{{CR}}}) * 3600",
                    "{{reason}}",
                )
            ],
            stack=True,
        ),
        ts(
            "Complaints by reason and channel (per hour)",
            [
                Q(
                    f"cxpulse:complaints:rate5m{{{REASON},{CHANNEL}}} * 3600",
                    "{{reason}} / {{channel}}",
                )
            ],
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
                    f'sum(cxpulse_alerts_active{{{JOB},type=~"(cx\\\\.alert\\\\.)?complaint_spike"}})'
                    " or vector(0)",
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
            [
                Q(
                    f"cxpulse:resolution_time_seconds_by_channel:p90_rate1h{{{CHANNEL}}}",
                    "{{channel}}",
                )
            ],
            unit="s",
        ),
        ts(
            "First-contact resolution",
            [Q("cxpulse:fcr:ratio_rate1h", "FCR")],
            unit="percentunit",
            min_val=0,
            max_val=1,
            w=8,
            thresholds=higher_is_better(t["fcr_bad"], t["fcr"]),
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
            [
                Q(
                    per("cxpulse_nps_responses_total", by="category", scale=3600),
                    "{{category}}",
                )
            ],
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


def deliveries() -> dashboard.Dashboard:
    t = TARGETS
    sel = f"{JOB},{CARRIER},{REGION}"
    on_time = [
        st(
            "On-time delivery (fleet)",
            [Q("cxpulse:deliveries_on_time_fleet:ratio_rate30m")],
            unit="percentunit",
            w=6,
            thresholds=higher_is_better(t["on_time_alert"], t["on_time"]),
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
            thresholds=lower_is_better(1, 5),
            description="Orders whose promise passed with no delay notification.",
        ),
        on_time_by_carrier_region(t),
        bars(
            "On-time now by carrier and region",
            [
                Q(
                    f"cxpulse:deliveries_on_time:ratio_rate30m{{{CARRIER},{REGION}}}",
                    "{{carrier}} / {{region}}",
                    instant=True,
                )
            ],
            thresholds=higher_is_better(t["on_time_alert"], t["on_time"]),
        ),
    ]
    flow = [
        ts(
            "Deliveries by outcome (per hour)",
            [
                Q(
                    per("cxpulse_deliveries_total", by="outcome", sel=sel, scale=3600),
                    "{{outcome}}",
                )
            ],
            stack=True,
        ),
        ts(
            "Delivery status events by status (per hour)",
            [
                Q(
                    per("cxpulse_delivery_status_total", by="status", sel=sel, scale=3600),
                    "{{status}}",
                )
            ],
        ),
        ts(
            "Delays predicted vs missed (per hour)",
            [
                Q(
                    per("cxpulse_delivery_delays_predicted_total", sel=sel, scale=3600),
                    "predicted (notified)",
                ),
                Q(
                    per("cxpulse_delivery_delays_missed_total", scale=3600),
                    "missed (late, not notified)",
                ),
            ],
            description="Missed delays are fleet-wide (the counter has no carrier/region).",
        ),
        ts(
            "Notification lead time",
            [
                Q(
                    quantile(0.5, "cxpulse_notification_lead_time_seconds", window="1h"),
                    "p50",
                ),
                Q(
                    quantile(0.1, "cxpulse_notification_lead_time_seconds", window="1h"),
                    "p10",
                ),
            ],
            unit="s",
            description="promised_by minus the time the delay notification was sent.",
        ),
        ts(
            "Failed attempts and exceptions (per hour)",
            [
                Q(
                    per(
                        "cxpulse_failed_delivery_attempts_total", by="carrier", sel=sel, scale=3600
                    ),
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
        "On-time delivery by carrier and region, delay predictions against misses, notification "
        "lead time.",
        [("On time", on_time), ("Flow and delays", flow)],
        variables=("carrier", "region"),
        annotations=[
            alert_annotation("Delivery alerts", "OnTimeDeliveryDrop|DeliveryDelaysMissed", "orange")
        ],
    )


def pipeline() -> dashboard.Dashboard:
    head = [
        st("Workers up", [Q(f"sum(up{{{JOB}}})")], w=6, thresholds=higher_is_better(1, 1)),
        st("Events in (per second)", [Q("sum(cxpulse:events:rate5m)")], w=6),
        st(
            "Dead-letter ratio",
            [Q("max(cxpulse:deadletter:ratio_rate5m)")],
            unit="percentunit",
            w=6,
            thresholds=lower_is_better(0.005, 0.01),
        ),
        st(
            "Consumer lag (messages)",
            [Q("sum(cxpulse:consumer_lag_messages:sum)")],
            w=6,
            thresholds=lower_is_better(100, 1000),
        ),
    ]
    flow = [
        ts("Events in by stream (per second)", [Q("cxpulse:events:rate5m", "{{stream}}")]),
        ts(
            "Events in by type (per second)",
            [
                Q(
                    per("cxpulse_events_total", by="stream, type"),
                    "{{stream}} {{type}}",
                )
            ],
        ),
        ts(
            "Rejected events by reason (per second)",
            [Q("cxpulse:events_rejected:rate5m", "{{stream}} {{reason}}")],
        ),
        ts(
            "Late and duplicate events (per second)",
            [
                Q("cxpulse:events_late:rate5m", "late {{stream}}"),
                Q(
                    per("cxpulse_events_duplicate_total", by="stream"),
                    "duplicate {{stream}}",
                ),
            ],
        ),
        ts(
            "Messages processed and dead-lettered (per second)",
            [
                Q("cxpulse:messages:rate5m", "messages {{stream}}"),
                Q(
                    per("cxpulse_deadletters_total", by="stream"),
                    "dead letters {{stream}}",
                ),
            ],
        ),
        ts(
            "Dead-letter ratio by stream",
            [Q("cxpulse:deadletter:ratio_rate5m", "{{stream}}")],
            unit="percentunit",
            thresholds=lower_is_better(0.005, 0.01),
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
            [
                Q(
                    quantile(0.99, "cxpulse_event_delay_seconds", by="stream", window="5m"),
                    "{{stream}}",
                )
            ],
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
            [
                Q(
                    per("cxpulse_alerts_total", by="type", scale=3600),
                    "{{type}}",
                )
            ],
            w=8,
        ),
        ts(
            "Notifications sent by type (per hour)",
            [
                Q(
                    per("cxpulse_notifications_total", by="type", scale=3600),
                    "{{type}}",
                )
            ],
            w=8,
            stack=True,
        ),
        ts(
            "Notifications suppressed by reason (per hour)",
            [
                Q(
                    per("cxpulse_notifications_suppressed_total", by="reason", scale=3600),
                    "{{reason}}",
                )
            ],
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
                "CxpulseWorkerDown|CxpulseWorkersAbsent|NoEventsArriving|ConsumerLagGrowing|DeadLetterRateHigh",
                "purple",
            )
        ],
    )


BOARDS = {
    "cx-scorecard": scorecard,
    "digital-experience": digital,
    "contact-center": contact_center,
    "deliveries": deliveries,
    "pipeline-health": pipeline,
}


def to_json(model: dm.Dashboard) -> dict:
    """The dashboard JSON Grafana expects (the SDK's encoding plus :data:`ANNOTATION_EXTRAS`)."""
    data = json.loads(json.dumps(model, cls=JSONEncoder))
    for annotation in data.get("annotations", {}).get("list", []):
        if "expr" in annotation:
            annotation.update(ANNOTATION_EXTRAS)
    return data


def all_dashboards() -> dict[str, dm.Dashboard]:
    """``{file stem: built dashboard model}`` with unique panel ids per board."""
    out: dict[str, dm.Dashboard] = {}
    for stem, make in BOARDS.items():
        built = make().build()
        next_id = 1
        for panel in built.panels or []:
            panel.id_val = next_id
            next_id += 1
        out[stem] = built
    return out
