"""Conformance tests of the FrustrationSignals facade: error/dead clicks, login streaks, expiry."""

from __future__ import annotations

from typing import Any

import pytest

from detectors.frustration import FrustrationSignals
from detectors.signals import Signal
from schemas.models import ClickstreamEvent

T0 = 1_700_000_000.0


def ev(
    kind: str, dt_s: float, sid: str = "s1", cust: str | None = None, **kw: Any
) -> ClickstreamEvent:
    return ClickstreamEvent(
        f"{kind}{dt_s}",
        T0 + dt_s,
        kind,
        sid,
        kw.pop("page", "/p"),
        customer_id=cust,
        **kw,
    )


def kinds(events: list[ClickstreamEvent], **kw: object) -> list[str]:
    fs = FrustrationSignals(**kw)  # type: ignore[arg-type]
    return [s.kind for e in events for s in fs.process(e)]


def clk(dt: float, **kw: Any) -> ClickstreamEvent:
    kw.setdefault("element", "a#link")
    return ev("click", dt, **kw)


def fail(dt: float, sid: str = "s1", cust: str | None = None) -> ClickstreamEvent:
    return ev("login", dt, sid=sid, cust=cust, success=False)


def ok(dt: float, sid: str = "s1", cust: str | None = None) -> ClickstreamEvent:
    return ev("login", dt, sid=sid, cust=cust, success=True)


CASES: list[tuple[str, list[ClickstreamEvent], list[str]]] = [
    ("error 500 ms after click", [clk(0), ev("error", 0.5)], ["error_click"]),
    ("error 999 ms after click", [clk(0), ev("error", 0.999)], ["error_click"]),
    ("error 1001 ms after click", [clk(0), ev("error", 1.001)], []),
    ("error without click", [ev("error", 0.1)], []),
    ("error before the click (out of order)", [clk(1.0), ev("error", 0.5)], []),
    (
        "two errors after one click count once",
        [clk(0), ev("error", 0.1), ev("error", 0.2)],
        ["error_click"],
    ),
    ("error in another session", [clk(0), ev("error", 0.1, sid="s2")], []),
    (
        "each click can be an error click",
        [clk(0), ev("error", 0.1), clk(5), ev("error", 5.2)],
        ["error_click", "error_click"],
    ),
    ("dead click", [clk(0, no_response=True)], ["dead_click"]),
    ("responsive click", [clk(0, no_response=False), clk(5)], []),
    (
        "each dead click counts",
        [clk(0, no_response=True), clk(3, no_response=True)],
        ["dead_click", "dead_click"],
    ),
    (
        "dead rage burst: 3 dead + 1 rage",
        [clk(i * 0.2, no_response=True, element="button#x", x=1.0, y=1.0) for i in range(3)],
        ["dead_click", "dead_click", "rage_click", "dead_click"],
    ),
    ("3 failed logins within 5 min", [fail(0), fail(100), fail(299)], ["failed_login_streak"]),
    (
        "3 failed logins spanning exactly 5 min",
        [fail(0), fail(100), fail(300)],
        ["failed_login_streak"],
    ),
    ("3 failed logins over 5 min", [fail(0), fail(100), fail(301)], []),
    ("old failure slides out", [fail(0), fail(200), fail(400), fail(450)], ["failed_login_streak"]),
    ("success resets", [fail(0), fail(10), ok(20), fail(30)], []),
    (
        "streak counted once, re-arms after 3 more",
        [fail(i * 10) for i in range(7)],
        ["failed_login_streak", "failed_login_streak"],
    ),
    (
        "per customer across sessions",
        [fail(0, "a", "c1"), fail(10, "b", "c1"), fail(20, "c", "c1")],
        ["failed_login_streak"],
    ),
    (
        "per session without customer, sessions separate",
        [fail(0, "a"), fail(10, "b"), fail(20, "c")],
        [],
    ),
    (
        "different customers separate",
        [fail(0, "a", "c1"), fail(10, "a", "c2"), fail(20, "a", "c3")],
        [],
    ),
    ("login without success flag ignored", [fail(0), ev("login", 5), fail(10)], []),
]


@pytest.mark.parametrize(("name", "events", "expected"), CASES, ids=[c[0] for c in CASES])
def test_rules(name: str, events: list[ClickstreamEvent], expected: list[str]) -> None:
    assert kinds(events) == expected, name


def test_signal_fields() -> None:
    fs = FrustrationSignals()
    fs.process(clk(0, cust="c9", page="/checkout", element="button#pay"))
    (sig,) = fs.process(ev("error", 0.3, cust="c9", page="/checkout/err", message="boom"))
    assert sig == Signal(
        "error_click",
        T0 + 0.3,
        "s1",
        "c9",
        "/checkout",
        {"element": "button#pay", "click_ts": T0, "message": "boom"},
    )
    (dead,) = fs.process(clk(9, no_response=True, page="/x"))
    assert dead.detail == {"element": "a#link"} and dead.page == "/x"
    fs.process(fail(0, cust="c9"))
    fs.process(fail(1, cust="c9"))
    (st,) = fs.process(fail(2, cust="c9"))
    assert st.detail == {"failures": 3, "first_ts": T0, "key": "c:c9"}


def test_login_window_parameters() -> None:
    assert kinds([fail(0), fail(1)], login_failures=2) == ["failed_login_streak"]
    assert kinds([fail(0), fail(61), fail(62)], login_window_s=60) == []


def test_expire_drops_idle_sessions_only() -> None:
    fs = FrustrationSignals(session_timeout_s=1800)
    fs.process(clk(0, sid="old"))
    fs.process(clk(1000, sid="young"))
    assert fs.active_sessions == 2
    assert fs.expire(T0 + 1800) == 0
    assert fs.expire(T0 + 1800.5) == 1
    assert fs.active_sessions == 1
    # An expired session starts fresh: its old click no longer arms an error click.
    assert fs.process(ev("error", 1800.6, sid="old")) == []


def test_activity_keeps_session_alive() -> None:
    fs = FrustrationSignals(session_timeout_s=100)
    fs.process(clk(0, sid="a"))
    fs.process(clk(1, sid="b"))
    fs.process(clk(90, sid="a"))
    assert fs.expire(T0 + 150) == 1 and fs.active_sessions == 1


def test_max_sessions_bound() -> None:
    fs = FrustrationSignals(max_sessions=10)
    for i in range(100):
        fs.process(clk(i, sid=f"s{i}"))
    assert fs.active_sessions == 10


def test_expiry_keeps_memory_flat() -> None:
    """100k sessions pass through; with periodic expiry the live state stays bounded."""
    fs = FrustrationSignals(session_timeout_s=60, login_window_s=300)
    peak_sessions = peak_streaks = 0
    for i in range(100_000):
        t = i * 0.05  # 20 new sessions per second, each a few events
        sid = f"s{i}"
        fs.process(clk(t, sid=sid))
        fs.process(ev("scroll", t + 0.1, sid=sid))
        fs.process(fail(t + 0.2, sid=sid))
        if i % 1000 == 0:
            fs.expire(T0 + t)
            peak_sessions = max(peak_sessions, fs.active_sessions)
            peak_streaks = max(peak_streaks, fs.active_streaks)
    # 60 s timeout at 20 sessions/s: ~1200 live sessions (+ up to 1000 between expiries);
    # login state lives for the 300 s login window: ~6000 (+1000).
    assert peak_sessions < 2300, peak_sessions
    assert peak_streaks < 7100, peak_streaks
    assert fs.expire(T0 + 10_000) > 0
    assert fs.active_sessions == 0 and fs.active_streaks == 0
