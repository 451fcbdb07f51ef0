"""Clickstream: page and error metrics, sessions, logins and frustration signals."""

from __future__ import annotations

from collections import OrderedDict

from schemas import ClickstreamEvent, Stream
from streams.event_time import RollingWindow
from streams.pipeline import Context, Outputs, StreamHandler


class ClickstreamHandler(StreamHandler):
    stream = Stream.CLICKSTREAM
    source_topic_setting = "topic_clickstream"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        m = self.metrics
        self._sessions: OrderedDict[str, float] = OrderedDict()  # session -> last event ts
        self._session_timeout = ctx.settings.session_timeout_seconds
        self._page_views: dict[str, object] = {}
        self._errors_window = RollingWindow(ctx.settings.window_seconds)
        self._login_ok = m.logins.labels("success")
        self._login_failed = m.logins.labels("failure")

    def on_event(self, event: ClickstreamEvent, late: bool, out: Outputs) -> None:  # type: ignore[override]
        m = self.metrics
        self._touch_session(event.session_id, event.ts)
        kind = event.type
        if kind == "page_view":
            page = self.ctx.pages(event.page)
            m.page_views.labels(page).inc()
            if not late:
                self._errors_window.add(event.ts, 0.0)
        elif kind == "click":
            m.clicks.labels(self.ctx.pages(event.page)).inc()
        elif kind == "error":
            m.client_errors.labels(self.ctx.pages(event.page)).inc()
            if not late:
                # An error adds to the numerator only: page views stay the denominator.
                self._errors_window.add(event.ts, 1.0, count=0.0)
        elif kind == "login":
            (self._login_ok if event.success else self._login_failed).inc()

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
        # Sessions are kept in last-touch order, so expiry stops at the first live one.
        sessions = self._sessions
        horizon = now - self._session_timeout
        while sessions:
            oldest = next(iter(sessions))
            if sessions[oldest] >= horizon:
                break
            del sessions[oldest]
        self.metrics.active_sessions.set(len(sessions))
        window = self._errors_window
        window.advance(now)
        views = window.count
        self.metrics.client_error_rolling_ratio.set(window.total / views if views else 0.0)
