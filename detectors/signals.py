"""The :class:`Signal` record: one frustration finding in a session's clickstream.

Signals are small, immutable and keyed by what caused them, so the clickstream agent can
re-key them by customer and publish them without further lookups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

SignalKind = Literal["rage_click", "error_click", "dead_click", "failed_login_streak"]

RAGE_CLICK: Final = "rage_click"
ERROR_CLICK: Final = "error_click"
DEAD_CLICK: Final = "dead_click"
FAILED_LOGIN_STREAK: Final = "failed_login_streak"

#: Every signal kind, in a stable order (for metric label pre-registration).
SIGNAL_KINDS: Final[tuple[str, ...]] = (RAGE_CLICK, ERROR_CLICK, DEAD_CLICK, FAILED_LOGIN_STREAK)


@dataclass(frozen=True, slots=True)
class Signal:
    """One frustration signal found in a session.

    Attributes
    ----------
    kind : str
        ``"rage_click"``, ``"error_click"``, ``"dead_click"`` or ``"failed_login_streak"``.
    ts : float
        Event time (epoch seconds) of the event that completed the signal (the 3rd click of a
        rage burst, the error of an error click, the dead click, the last failed login).
    session_id : str
        Session of that event.
    customer_id : str or None
        Customer of that event, when known.
    page : str
        Raw page path as carried by the event (the caller normalises it for labels).
    detail : dict
        Kind-specific facts: ``element``, ``clicks``, ``burst_start``/``burst_end`` for a rage
        click; ``element``, ``click_ts``, ``message`` for an error click; ``element`` for a dead
        click; ``failures``, ``first_ts``, ``key`` for a login streak.

    Examples
    --------
    >>> s = Signal("dead_click", 10.0, "s1", None, "/cart", {"element": "button#pay"})
    >>> s.kind, s.page, s.detail["element"]
    ('dead_click', '/cart', 'button#pay')
    """

    kind: str
    ts: float
    session_id: str
    customer_id: str | None
    page: str
    detail: dict[str, Any] = field(default_factory=dict)
