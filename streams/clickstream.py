"""Clickstream: page and error metrics, sessions, logins and frustration signals."""

from __future__ import annotations

from collections import OrderedDict

from detectors.customer_signal import CustomerSignal
from detectors.frustration import FrustrationSignals
from detectors.signals import Signal
from schemas import ClickstreamEvent, Stream
from streams.alerts import series_monitor
from streams.envelopes import Component
from streams.event_time import RollingWindow
from streams.pipeline import Context, Outputs, StreamHandler


def _split(spec: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in spec.split(",") if item.strip())


def frustration_signals(ctx: Context) -> FrustrationSignals:
    """The frustration-signal detectors configured from settings."""
    s = ctx.settings
    return FrustrationSignals(
        rage_min_clicks=s.rage_min_clicks,
        rage_max_interval_s=s.rage_max_interval_seconds,
        rage_max_distance_px=s.rage_max_distance_px,
        ignore_selectors=_split(s.rage_ignore_selectors),
        ignore_texts=_split(s.rage_ignore_texts),
        error_window_s=s.error_click_window_seconds,
        login_failures=s.failed_login_threshold,
        login_window_s=s.failed_login_window_seconds,
        session_timeout_s=s.session_timeout_seconds,
    )


class ClickstreamHandler(StreamHandler):
    stream = Stream.CLICKSTREAM

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        m = self.metrics
        self._sessions: OrderedDict[str, float] = OrderedDict()  # session -> last event ts
        self._session_timeout = ctx.settings.session_timeout_seconds
        self._page_views: dict[str, object] = {}
        self._errors_window = RollingWindow(ctx.settings.window_seconds)
        self._login_ok = m.logins.labels("success")
        self._login_failed = m.logins.labels("failure")
        m.active_sessions.set_function(lambda: len(self._sessions))
        self.frustration = frustration_signals(ctx)
        self.monitor = series_monitor(ctx, Component.CLICKSTREAM)
        self._signal_counters = {
            "rage_click": m.rage_clicks,
            "error_click": m.error_clicks,
            "dead_click": m.dead_clicks,
        }
        m.client_error_rolling_ratio.set_function(self._error_ratio)

    def on_event(self, event: ClickstreamEvent, late: bool, out: Outputs) -> None:  # type: ignore[override]
        m = self.metrics
        self._touch_session(event.session_id, event.ts)
        kind = event.type
        if kind == "page_view":
            page = self.ctx.pages(event.page)
            m.page_views.labels(page).inc()
            if not late:
                self._errors_window.add(event.ts, 0.0)
                self.monitor.observe("client_error_rate", {}, event.ts, 0.0, "mean")
        elif kind == "click":
            m.clicks.labels(self.ctx.pages(event.page)).inc()
        elif kind == "error":
            page = self.ctx.pages(event.page)
            m.client_errors.labels(page).inc()
            if not late:
                # An error adds to the numerator only: page views stay the denominator.
                self._errors_window.add(event.ts, 1.0, count=0.0)
                self.monitor.observe("client_error_rate", {}, event.ts, 1.0, "mean")
                self.monitor.observe(f'client_errors{{page="{page}"}}', {"page": page}, event.ts)
        elif kind == "login":
            (self._login_ok if event.success else self._login_failed).inc()
        for found in self.frustration.process(event):
            self._on_signal(found, late, out)

    def _on_signal(self, found: Signal, late: bool, out: Outputs) -> None:
        page = self.ctx.pages(found.page)
        counter = self._signal_counters.get(found.kind)
        if counter is not None:
            counter.labels(page).inc()
        else:
            self.metrics.failed_login_streaks.inc()
        if found.kind == "rage_click" and not late:
            self.monitor.observe(f'rage_clicks{{page="{page}"}}', {"page": page}, found.ts)
        if found.customer_id:
            # The session id is the cause; the page goes as its route template (no ids).
            out.signal(CustomerSignal(found.kind, found.customer_id, found.ts, found.session_id, {"page": page}))

    def _touch_session(self, session_id: str, ts: float) -> None:
        sessions = self._sessions
        if session_id in sessions:
            sessions.move_to_end(session_id)
            if ts > sessions[session_id]:
                sessions[session_id] = ts
        else:
            sessions[session_id] = ts
            self.metrics.sessions_started.inc()

    def on_clock(self, now: float, out: Outputs) -> None:
        self.frustration.expire(now)
        self.monitor.advance(now, out)
        # Sessions are kept in last-touch order, so expiry stops at the first live one.
        sessions = self._sessions
        horizon = now - self._session_timeout
        while sessions:
            oldest = next(iter(sessions))
            if sessions[oldest] >= horizon:
                break
            del sessions[oldest]

    def _error_ratio(self) -> float:
        window = self._errors_window
        window.advance(self.event_clock.now)
        return window.total / window.count if window.count else 0.0
