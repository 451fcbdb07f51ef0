"""Per-session frustration signals of the clickstream: the :class:`FrustrationSignals` facade.

One instance serves every session of a clickstream partition. Each event is handled in
arrival order against small, bounded per-session state (the last click chain and the last
click), in event time only: no wall clock is read anywhere, so replays give the same signals.

Rules (every threshold is a constructor parameter):

* **rage_click**: see :mod:`detectors.rage_clicks` (3 clicks on one element, each < 1000 ms and
  < 30 px after the previous; selection/scroll breaks the chain; text inputs and ignore lists
  excluded; one signal per burst).
* **error_click**: an ``error`` event comes less than ``error_window_s`` after the session's
  latest click (and not before it): one signal per click, carrying the click's page and element.
* **dead_click**: a click with ``no_response: true``: one signal per such click.
* **failed_login_streak**: ``login_failures`` failed ``login`` events (``success: false``) within
  ``login_window_s``, counted per customer when the event carries ``customer_id``, else per
  session. After a streak is reported its count restarts from zero (a fourth failure does not
  report again; three more do); a successful login also resets it. With
  ``customer_logins=False`` logins that carry a ``customer_id`` are left to the caller: the worker
  counts those streaks in the customers agent (:mod:`detectors.login_streak`), since one
  customer's sessions sit on different clickstream partitions.

Out-of-order events are processed in arrival order: a click older than the previous chained click
neither extends nor breaks the rage chain, and does not replace the "latest click" for error
clicks; an error older than the latest click is not an error click.
"""

from __future__ import annotations

from collections import OrderedDict, deque

from detectors.rage_clicks import DEFAULT_IGNORE_TEXTS, RageClickDetector, RageClickState
from detectors.signals import DEAD_CLICK, ERROR_CLICK, FAILED_LOGIN_STREAK, Signal
from schemas.models import ClickstreamEvent


class _Session(RageClickState):
    """Rage chain (inherited) plus the latest click, for error clicks."""

    __slots__ = ("click_armed", "click_element", "click_page", "click_ts", "last_seen")

    def __init__(self) -> None:
        super().__init__()
        self.last_seen = float("-inf")
        self.click_ts = float("-inf")
        self.click_page = ""
        self.click_element: str | None = None
        self.click_armed = False


class _Streak:
    __slots__ = ("fails", "last_seen")

    def __init__(self, maxlen: int) -> None:
        self.fails: deque[float] = deque(maxlen=maxlen)
        self.last_seen = float("-inf")


class FrustrationSignals:
    """Finds rage, error and dead clicks and failed-login streaks across many sessions.

    Parameters
    ----------
    rage_min_clicks, rage_max_interval_s, rage_max_distance_px : int, float, float
        Rage-click burst: defaults 3 clicks, < 1.0 s and < 30 px apart (PostHog).
    ignore_selectors : iterable of str, default ()
        Selectors excluded from rage clicks: globs, or regexes prefixed ``re:``.
    ignore_texts : iterable of str, default PostHog's list
        Element texts excluded from rage clicks (``next``, ``prev``, ``>``, ``+``, ...).
    exclude_text_entry : bool, default True
        Clicks on text inputs, textareas and contenteditable never form a rage click.
    error_window_s : float, default 1.0
        An ``error`` strictly less than this after a click makes it an error click.
    login_failures : int, default 3
        Failed logins that make a streak.
    login_window_s : float, default 300.0
        The failures of a streak fall within this span (inclusive).
    session_timeout_s : float, default 1800.0
        :meth:`expire` drops sessions idle (in event time) longer than this.
    customer_logins : bool, default True
        Count the streaks of logins that name a customer here (False: only anonymous ones).
    max_sessions : int, default 1_000_000
        Hard bound on tracked sessions; beyond it the least recently active one is dropped.
    rage_detector : RageClickDetector, optional
        A prebuilt rule object (overrides the ``rage_*`` and ignore parameters).

    Examples
    --------
    >>> from schemas.models import ClickstreamEvent as E
    >>> fs = FrustrationSignals()
    >>> evs = [E(f"e{i}", 100 + 0.2 * i, "click", "s1", "/pay", element="button#ok", x=5, y=5)
    ...        for i in range(4)]
    >>> evs.append(E("e9", 100.7, "error", "s1", "/pay", message="TypeError"))
    >>> [s.kind for e in evs for s in fs.process(e)]
    ['rage_click', 'error_click']
    >>> fs.active_sessions, fs.sessions_started, fs.expire(now=100.7 + 1801), fs.active_sessions
    (1, 1, 1, 0)
    """

    __slots__ = (
        "_sessions",
        "_streaks",
        "customer_logins",
        "error_window_s",
        "login_failures",
        "login_window_s",
        "max_sessions",
        "rage",
        "session_timeout_s",
        "sessions_started",
    )

    def __init__(
        self,
        rage_min_clicks: int = 3,
        rage_max_interval_s: float = 1.0,
        rage_max_distance_px: float = 30.0,
        ignore_selectors: tuple[str, ...] | list[str] = (),
        ignore_texts: tuple[str, ...] | list[str] = DEFAULT_IGNORE_TEXTS,
        exclude_text_entry: bool = True,
        error_window_s: float = 1.0,
        login_failures: int = 3,
        login_window_s: float = 300.0,
        session_timeout_s: float = 1800.0,
        max_sessions: int = 1_000_000,
        rage_detector: RageClickDetector | None = None,
        customer_logins: bool = True,
    ) -> None:
        self.rage = rage_detector or RageClickDetector(
            min_clicks=rage_min_clicks,
            max_interval_s=rage_max_interval_s,
            max_distance_px=rage_max_distance_px,
            ignore_selectors=ignore_selectors,
            ignore_texts=ignore_texts,
            exclude_text_entry=exclude_text_entry,
        )
        self.error_window_s = error_window_s
        self.login_failures = login_failures
        self.login_window_s = login_window_s
        self.session_timeout_s = session_timeout_s
        self.customer_logins = customer_logins
        self.max_sessions = max_sessions
        # Ordered by last arrival: the front holds the sessions idle the longest.
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._streaks: OrderedDict[str, _Streak] = OrderedDict()
        #: Sessions seen for the first time (monotonic; an expired session seen again counts again).
        self.sessions_started = 0

    @property
    def active_sessions(self) -> int:
        """Number of sessions with state."""
        return len(self._sessions)

    @property
    def active_streaks(self) -> int:
        """Number of customers/sessions with failed-login state."""
        return len(self._streaks)

    def process(self, ev: ClickstreamEvent) -> list[Signal]:
        """Handle one event; return the signals it completes (usually none)."""
        sessions = self._sessions
        sid = ev.session_id
        st = sessions.get(sid)
        if st is None:
            st = _Session()
            sessions[sid] = st
            self.sessions_started += 1
            if len(sessions) > self.max_sessions:
                sessions.popitem(last=False)
        else:
            sessions.move_to_end(sid)
        ts = ev.ts
        if ts > st.last_seen:
            st.last_seen = ts
        t = ev.type
        if t == "click":
            out: list[Signal] = []
            sig = self.rage.on_click(st, ev)
            if sig is not None:
                out.append(sig)
            if ev.no_response:
                out.append(
                    Signal(DEAD_CLICK, ts, sid, ev.customer_id, ev.page, {"element": ev.element})
                )
            if ts >= st.click_ts:
                st.click_ts = ts
                st.click_page = ev.page
                st.click_element = ev.element
                st.click_armed = True
            return out
        if t == "scroll" or t == "selection":
            st.count = 0
            return []
        if t == "error":
            if st.click_armed and 0.0 <= ts - st.click_ts < self.error_window_s:
                st.click_armed = False
                detail = {
                    "element": st.click_element,
                    "click_ts": st.click_ts,
                    "message": ev.message,
                }
                return [Signal(ERROR_CLICK, ts, sid, ev.customer_id, st.click_page, detail)]
            return []
        if t == "login":
            return self._login(ev)
        return []

    def _login(self, ev: ClickstreamEvent) -> list[Signal]:
        if ev.customer_id is not None and not self.customer_logins:
            return []  # the customer's owner counts it (detectors.login_streak)
        key = f"c:{ev.customer_id}" if ev.customer_id is not None else f"s:{ev.session_id}"
        streaks = self._streaks
        if ev.success is not False:
            if ev.success:
                streaks.pop(key, None)
            return []
        sk = streaks.get(key)
        if sk is None:
            sk = _Streak(self.login_failures)
            streaks[key] = sk
        else:
            streaks.move_to_end(key)
        ts = ev.ts
        if ts > sk.last_seen:
            sk.last_seen = ts
        fails = sk.fails
        fails.append(ts)
        horizon = sk.last_seen - self.login_window_s
        while fails and fails[0] < horizon:
            fails.popleft()
        if len(fails) >= self.login_failures:
            detail = {"failures": len(fails), "first_ts": min(fails), "key": key}
            fails.clear()
            return [Signal(FAILED_LOGIN_STREAK, ts, ev.session_id, ev.customer_id, ev.page, detail)]
        return []

    def expire(self, now: float) -> int:
        """Drop sessions idle longer than ``session_timeout_s`` before ``now`` (event time).

        Sessions are kept in order of last arrival, so the scan stops at the first live one:
        the cost is proportional to the number expired. (With events out of order across
        sessions, a session can outlive its timeout by the disorder; it goes on a later call.)
        Failed-login state idle longer than ``login_window_s`` is dropped the same way.
        Returns the number of sessions dropped.
        """
        _expire(self._streaks, now - self.login_window_s)
        return _expire(self._sessions, now - self.session_timeout_s)


def _expire(od: OrderedDict[str, _Session] | OrderedDict[str, _Streak], horizon: float) -> int:
    n = 0
    while od:
        k = next(iter(od))
        if od[k].last_seen >= horizon:
            break
        del od[k]
        n += 1
    return n
