"""Clickstream: page and error metrics, sessions, logins and frustration signals."""

from __future__ import annotations

from detectors.customer_signal import CustomerSignal
from detectors.frustration import FrustrationSignals
from detectors.login_streak import login_signal
from detectors.signals import Signal
from schemas import ClickstreamEvent, Stream
from streams.event_time import RollingWindow
from streams.metrics import Children
from streams.pipeline import Context, Outputs, StreamHandler
from streams.series import SeriesPartials


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
        # A customer's sessions sit on several partitions: their streak is counted by the
        # customers agent from the login signals below (detectors/login_streak.py).
        customer_logins=False,
    )


class ClickstreamHandler(StreamHandler):
    """Page and error metrics, and the frustration detectors, over one session map.

    The frustration detector's per-session state is the worker's only session map: the active
    sessions gauge and the sessions-started counter read it, so nothing is kept twice.
    """

    stream = Stream.CLICKSTREAM

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        m = self.metrics
        self._errors_window = RollingWindow(ctx.settings.window_seconds)
        self._login_ok = m.logins.labels("success")
        self._login_failed = m.logins.labels("failure")
        self._sessions_started = m.tallies.tally(m.sessions_started)
        self._page_views = Children(m.page_views, m.tallies)
        self._clicks = Children(m.clicks, m.tallies)
        self._client_errors = Children(m.client_errors, m.tallies)
        self.frustration = frustration_signals(ctx)
        m.active_sessions.set_function(lambda: self.frustration.active_sessions)
        self.monitor: SeriesPartials = SeriesPartials(ctx, self.stream)
        self._signal_counters = {
            "rage_click": Children(m.rage_clicks, m.tallies),
            "error_click": Children(m.error_clicks, m.tallies),
            "dead_click": Children(m.dead_clicks, m.tallies),
        }
        m.client_error_rolling_ratio.set_function(self._error_ratio)

    def on_event(self, event: ClickstreamEvent, late: bool, out: Outputs) -> None:  # type: ignore[override]
        kind = event.type
        page = self.ctx.pages(event.page)  # the event's route label, computed once
        if kind == "page_view":
            self._page_views.get_child(page).inc()
            if not late:
                self._errors_window.add(event.ts, 0.0, now=self.event_clock.now)
                self.monitor.observe("client_error_rate", {}, event.ts, 0.0, "mean")
        elif kind == "click":
            self._clicks.get_child(page).inc()
        elif kind == "error":
            self._client_errors.get_child(page).inc()
            if not late:
                # An error adds to the numerator only: page views stay the denominator.
                self._errors_window.add(event.ts, 1.0, count=0.0, now=self.event_clock.now)
                self.monitor.observe("client_error_rate", {}, event.ts, 1.0, "mean")
                self.monitor.observe(f'client_errors{{page="{page}"}}', {"page": page}, event.ts)
        elif kind == "login":
            (self._login_ok if event.success else self._login_failed).inc()
            if event.customer_id is not None:
                customer, session = event.customer_id, event.session_id
                out.signal(login_signal(customer, event.ts, session, page, event.success, event.event_id))
        started = self.frustration.sessions_started
        found_signals = self.frustration.process(event)
        if self.frustration.sessions_started != started:
            self._sessions_started.inc()
        for found in found_signals:
            # An error click carries the page of its click, which may differ from the error's.
            self._on_signal(found, page if found.page == event.page else self.ctx.pages(found.page), late, out)

    def _on_signal(self, found: Signal, page: str, late: bool, out: Outputs) -> None:
        counter = self._signal_counters.get(found.kind)
        if counter is not None:
            counter.get_child(page).inc()
        else:
            self.metrics.failed_login_streaks.inc()
        if found.kind == "rage_click" and not late:
            self.monitor.observe(f'rage_clicks{{page="{page}"}}', {"page": page}, found.ts)
        if found.customer_id:
            # The session id is the cause; the page goes as its route template (no ids).
            out.signal(CustomerSignal(found.kind, found.customer_id, found.ts, found.session_id, {"page": page}))

    def on_clock(self, now: float, out: Outputs) -> None:
        # On the safe watermark, not ``now``: after a rebalance ``now`` may be far ahead of a
        # partition taken over, whose sessions would expire between two clicks of a burst.
        self.frustration.expire(self.event_clock.safe)

    def _error_ratio(self) -> float:
        window = self._errors_window
        window.advance(self.event_clock.now)
        return window.total / window.count if window.count else 0.0
