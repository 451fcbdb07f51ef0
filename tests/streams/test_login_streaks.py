"""Failed-login streaks are counted per customer by the customer's owner, across clickstream partitions."""

from __future__ import annotations

import orjson
from prometheus_client import CollectorRegistry

from detectors.login_streak import LoginStreaks, login_signal
from schemas.models import rfc3339
from streams.clickstream import ClickstreamHandler
from streams.customers import SIGNAL_STREAMS, CustomersHandler
from streams.metrics import Metrics
from streams.pipeline import PROGRESS, Context, Outputs
from streams.settings import Settings
from streams.topics import Store, Topic

T0 = 1_700_000_000.0


def login(n: int, ts: float, session: str, success: bool, customer: str | None = "cust-1") -> bytes:
    event = {"event_id": f"l{n}", "ts": rfc3339(ts), "type": "login", "session_id": session, "page": "/login"}
    event["success"] = success
    if customer is not None:
        event["customer_id"] = customer
    return orjson.dumps(event)


def worker(partitions: list[int]) -> ClickstreamHandler:
    handler = ClickstreamHandler(Context.create(Settings(), Metrics(CollectorRegistry())))
    handler.event_clock.assign(partitions)
    return handler


def signals_of(out: Outputs) -> list[bytes]:
    return [record.value for record in out.records if record.topic == Topic.SIGNALS and record.partition is None]


def test_a_streak_over_sessions_on_two_workers_is_counted_once_by_the_customers_agent() -> None:
    first, second = worker([0, 1]), worker([2])  # the customer's three sessions: three partitions
    customers = CustomersHandler(Context.create(Settings(), Metrics(CollectorRegistry())))
    records = []
    records += signals_of(first.handle(login(1, T0, "s-a", False), b"s-a", 0))
    records += signals_of(second.handle(login(2, T0 + 60, "s-b", False), b"s-b", 2))
    records += signals_of(first.handle(login(3, T0 + 120, "s-c", False), b"s-c", 1))
    # Neither worker saw a streak: each holds one or two of the customer's sessions.
    for handler in (first, second):
        assert handler.metrics.failed_login_streaks._value.get() == 0
    assert len(records) == 3
    for value in records:
        customers.handle(value, b"cust-1", 0)
    assert customers.metrics.failed_login_streaks._value.get() == 0  # held for the signals watermark
    for stream in SIGNAL_STREAMS:  # every input partition reports progress past the logins
        for p in range(customers.ctx.settings.partitions):
            progress = {"type": PROGRESS, "stream": stream, "partition": p, "through": T0 + 600}
            customers.handle(orjson.dumps(progress), f"{stream}/{p}".encode(), 0)
    assert customers.metrics.failed_login_streaks._value.get() == 1
    scored = customers.ctx.store(Store.FRUSTRATION)["cust-1"]["signals"]
    # The same signal as the clickstream used to send: time, session and page of the third failure.
    assert scored == [["failed_login_streak", T0 + 120, "s-c"]]
    customers.handle(records[-1], b"cust-1", 0)  # delivered again after a restart: counted once
    assert customers.metrics.failed_login_streaks._value.get() == 1


def test_anonymous_logins_keep_their_per_session_streak_in_the_clickstream() -> None:
    handler = worker([0])
    outs = [handler.handle(login(n, T0 + n, "s", False, customer=None), b"s", 0) for n in range(3)]
    records = [value for out in outs for value in signals_of(out)]
    assert records == [] and handler.metrics.failed_login_streaks._value.get() == 1


def test_a_success_resets_and_state_expires_on_the_watermark_not_on_a_signal_time() -> None:
    streaks = LoginStreaks(threshold=3, window_s=300.0)
    assert streaks.observe(login_signal("c", T0, "s1", "/login", False, "e1")) is None
    assert streaks.observe(login_signal("c", T0 + 1, "s1", "/login", False, "e2")) is None
    assert streaks.observe(login_signal("c", T0 + 2, "s2", "/login", True, "e3")) is None  # reset
    assert "c" not in streaks.store
    streaks.observe(login_signal("c", T0 + 3, "s1", "/login", False, "e4"))
    # Another customer's login far ahead (its partition ran ahead) drops nothing.
    streaks.observe(login_signal("d", T0 + 86400, "s9", "/login", False, "e5"))
    assert set(streaks.store) == {"c", "d"}
    streaks.advance(T0 + 3 + 300)  # the watermark passes c's window
    assert set(streaks.store) == {"d"}
