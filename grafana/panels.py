"""What every board is built from: the datasource, PromQL helpers, panel and threshold builders,
template variables, alert annotations and the board frame (grafana-foundation-sdk).

Every panel reads the Prometheus datasource provisioned with uid :data:`DATASOURCE_UID`
(``grafana/provisioning/datasources/prometheus.yaml``), mostly through the recording rules of
``deploy/prometheus/rules/recording.yml`` so boards and alerts show the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.builders import bargauge, dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.builders.common import ReduceDataOptions, StackingConfig, VizLegendOptions
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.common import (
    BarGaugeDisplayMode,
    BigValueColorMode,
    BigValueGraphMode,
    LegendDisplayMode,
    LegendPlacement,
    StackingMode,
)

from grafana.targets import Target

DATASOURCE_UID = "cxpulse-prometheus"
DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
TAGS = ["cxpulse"]
JOB = 'job="cxpulse"'

# Variable filters used in expressions.
CARRIER = 'carrier=~"$carrier"'
REGION = 'region=~"$region"'
CHANNEL = 'channel=~"$channel"'
REASON = 'reason=~"$reason"'
PAGE = 'page=~"$page"'
RATE_INTERVAL = "$__rate_interval"


def per(metric: str, *, by: str = "", sel: str = JOB, window: str = RATE_INTERVAL, scale: int = 1) -> str:
    """``sum [by (...)] (rate(metric{sel}[window])) [* scale]``: a rate summed over workers."""
    group = f" by ({by}) " if by else ""
    expr = f"sum{group}(rate({metric}{{{sel}}}[{window}]))"
    return f"{expr} * {scale}" if scale != 1 else expr


def quantile(q: float, histogram: str, *, by: str = "", window: str = "1h") -> str:
    """``histogram_quantile`` over the fleet's buckets of ``histogram`` (optionally by labels)."""
    labels = f"{by}, le" if by else "le"
    return f"histogram_quantile({q}, sum by ({labels}) (rate({histogram}_bucket{{{JOB}}}[{window}])))"


@dataclass(frozen=True)
class Q:
    """One Prometheus query of a panel."""

    expr: str
    legend: str = ""
    instant: bool = False


def _with_queries(panel, queries: Sequence[Q]):
    for i, q in enumerate(queries):
        target = prometheus.Dataquery().expr(q.expr).ref_id(chr(ord("A") + i)).datasource(DATASOURCE)
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


def higher_is_better(bad: float, goal: float) -> dashboard.ThresholdsConfig:
    """Red under ``bad``, yellow under ``goal``, green at or over the goal."""
    return _thresholds([(None, "red"), (bad, "yellow"), (goal, "green")])


def lower_is_better(goal: float, bad: float) -> dashboard.ThresholdsConfig:
    """Green under ``goal``, yellow under ``bad``, red at or over ``bad``."""
    return _thresholds([(None, "green"), (goal, "yellow"), (bad, "red")])


def traffic_light(target: Target) -> dashboard.ThresholdsConfig:
    """Green at the target's goal, red where it is bad (where its alert, if any, fires)."""
    if target.higher_is_better:
        return higher_is_better(target.bad, target.goal)
    return lower_is_better(target.goal, target.bad)


def _framed(panel, title: str, description: str, unit: str, w: int, h: int, thresholds):
    """What every panel kind sets alike: title, description, datasource, unit, size, thresholds."""
    panel = panel.title(title).description(description).datasource(DATASOURCE).unit(unit).span(w).height(h)
    return panel if thresholds is None else panel.thresholds(thresholds)


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
    """Time series panel, legend as a table (right of wide panels, under narrow ones)."""
    panel = (
        _framed(timeseries.Panel(), title, description, unit, w, h, thresholds)
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
        panel = panel.stacking(StackingConfig().mode(StackingMode.NORMAL))
    if min_val is not None:
        panel = panel.min(min_val)
    if max_val is not None:
        panel = panel.max(max_val)
    return _with_queries(panel, queries)


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
    """Stat panel: the last value, background coloured by ``thresholds``."""
    panel = (
        _framed(stat.Panel(), title, description, unit, w, h, thresholds)
        .color_mode(BigValueColorMode.BACKGROUND)
        .graph_mode(BigValueGraphMode.AREA)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    if decimals is not None:
        panel = panel.decimals(decimals)
    return _with_queries(panel, queries)


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
    """Bar gauge of the last value per series, from 0 (to 1 for ratios)."""
    panel = (
        _framed(bargauge.Panel(), title, description, unit, w, h, thresholds)
        .min(0)
        .display_mode(BarGaugeDisplayMode.GRADIENT)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    if unit == "percentunit":
        panel = panel.max(1)
    return _with_queries(panel, queries)


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


#: Prometheus-annotation fields the SDK has no builder method for; added by ``grafana.boards.to_json``.
ANNOTATION_EXTRAS = {"step": "30s", "titleFormat": "{{alertname}}", "useValueForTime": False}


def board(
    uid: str,
    title: str,
    description: str,
    rows: Sequence[tuple[str, Sequence]],
    variables: Sequence[str] = (),
    annotations: Sequence[dashboard.AnnotationQuery] = (),
) -> dashboard.Dashboard:
    """A cxpulse board: tagged, linked to the other boards, refreshed every 30s, one row per
    ``(row title, panels)``, with the named :data:`VARIABLES`."""
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
