"""The digital-experience board: sessions, page views, client errors, rage/dead/error clicks by
page and logins, with the digital alerts as annotations."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from grafana.panels import JOB, PAGE, Q, alert_annotation, board, per, st, traffic_light, ts
from grafana.targets import CLIENT_ERROR_RATIO


def build() -> dashboard.Dashboard:
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
            thresholds=traffic_light(CLIENT_ERROR_RATIO),
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
            thresholds=traffic_light(CLIENT_ERROR_RATIO),
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
        "Web and app experience: sessions, page views, client errors, rage/dead/error clicks by page, logins.",
        [("Overview", overview), ("Pages", pages), ("Logins and sessions", logins)],
        variables=("page",),
        annotations=[alert_annotation("Digital alerts", "RageClickStorm|ClientErrorStorm", "orange")],
    )
