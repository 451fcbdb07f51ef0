"""Failed-login streaks per customer, counted by the customer's owner (the customers agent).

Logins travel on ``cx.clickstream`` keyed by *session*, so one customer's sessions sit on
different partitions and workers: a streak counted there per customer would see only the logins
of the sessions one worker holds. The clickstream handler therefore sends every login of a known
customer as a small ``login`` signal to ``cx.signals`` (keyed by customer), and this detector,
run by the customers agent, counts the streak in the customer's own changelogged store, on the
customer's own event times. Anonymous logins (no customer) keep their per-session streak in
:mod:`detectors.frustration`, where the session's one partition sees them all.

The rule is :mod:`detectors.frustration`'s: ``threshold`` failed logins within ``window_s`` (of
the newest failure seen) make a streak; the count then restarts from zero, and a successful login
resets it. The streak is a ``failed_login_streak`` :class:`CustomerSignal` with the time, session
and page of the failure that completed it, exactly as the clickstream handler sent it before, so
the frustration score (and the outreach ids derived from it) see the same signal.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from detectors.customer_signal import CustomerSignal, DueIndex

#: Kind of the signal that carries one login of a known customer (not scored itself).
LOGIN = "login"
FAILED_LOGIN_STREAK = "failed_login_streak"
#: Event ids remembered per customer, so a login signal delivered again counts once.
MAX_IDS = 16


def login_signal(
    customer_id: str, ts: float, session_id: str, page: str, success: bool | None, event_id: str
) -> CustomerSignal:
    """The ``login`` signal the clickstream handler sends for a login of a known customer."""
    return CustomerSignal(LOGIN, customer_id, ts, session_id, {"page": page, "success": success, "event_id": event_id})


class LoginStreaks:
    """Per-customer failed-login streaks in a store (``customer_id -> {"fails", "last_seen", "ids"}``).

    >>> streaks = LoginStreaks(threshold=3, window_s=300.0)
    >>> found = [streaks.observe(login_signal("c-1", t, f"s{t:.0f}", "/login", False, f"e{t:.0f}"))
    ...          for t in (0.0, 100.0, 250.0)]
    >>> found[:2], found[2].kind, found[2].ts, found[2].source_id, dict(found[2].detail)
    ([None, None], 'failed_login_streak', 250.0, 's250', {'page': '/login'})
    >>> streaks.observe(login_signal("c-1", 250.0, "s250", "/login", False, "e250")) is None  # again
    True
    >>> streaks.advance(250.0 + 301.0); len(streaks.store)
    0
    """

    def __init__(
        self, threshold: int = 3, window_s: float = 300.0, store: MutableMapping[str, dict[str, Any]] | None = None
    ) -> None:
        self.threshold = threshold
        self.window_s = window_s
        self.store: MutableMapping[str, dict[str, Any]] = store if store is not None else {}
        self._index = DueIndex()  # customer -> when its state is idle for a whole window
        self.rebuild_index()

    def rebuild_index(self) -> None:
        """Re-index the store's customers (after the store was recovered or changed hands)."""
        self._index.clear()
        for customer_id, state in self.store.items():
            self._index.schedule(customer_id, float(state["last_seen"]) + self.window_s)

    def observe(self, signal: CustomerSignal) -> CustomerSignal | None:
        """Apply one ``login`` signal; return the ``failed_login_streak`` it completes, if any."""
        detail = signal.detail
        customer_id = signal.customer_id
        state = self.store.get(customer_id)
        event_id = str(detail.get("event_id", ""))
        if state is not None and event_id and event_id in state["ids"]:
            return None  # delivered again (at-least-once): already counted
        success = detail.get("success")
        if success is not False:
            if success and state is not None:
                del self.store[customer_id]
                self._index.discard(customer_id)
            return None
        state = dict(state) if state is not None else {"fails": [], "last_seen": signal.ts, "ids": []}
        last_seen = max(float(state["last_seen"]), signal.ts)
        horizon = last_seen - self.window_s
        fails = [*state["fails"], signal.ts][-self.threshold :]  # the newest ``threshold``, as they came
        while fails and fails[0] < horizon:
            fails.pop(0)
        found = None
        if len(fails) >= self.threshold:
            fails = []
            found = CustomerSignal(
                FAILED_LOGIN_STREAK, customer_id, signal.ts, signal.source_id, {"page": detail.get("page", "")}
            )
        state.update(fails=fails, last_seen=last_seen, ids=[*state["ids"], event_id][-MAX_IDS:])
        self.store[customer_id] = state
        self._index.schedule(customer_id, last_seen + self.window_s)
        return found

    def advance(self, now: float) -> None:
        """Forget customers with no failed login within the window before ``now`` (the watermark)."""
        for customer_id, _ in list(self._index.pop_due(now)):
            self.store.pop(customer_id, None)
