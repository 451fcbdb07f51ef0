"""Rage clicks end to end through the real broker: exact ``cxpulse_rage_clicks_total`` per page.

Sessions are generated with a seed and known bursts, mixed with near misses that must not
count (gaps just over 1 s, clicks 30 px apart, a scroll or a selection inside the chain, text
inputs, stepper and carousel buttons), and sent as SDK batches keyed by session.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime

import orjson
import pytest

from tests.kafka_harness import produce, sample

pytestmark = pytest.mark.kafka

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC).timestamp()
PAGES = {"/checkout": "/checkout", "/products/{n}": "/products/:id", "/cart": "/cart", "/orders/{n}": "/orders/:id"}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


class SessionWriter:
    def __init__(self, sid: str, start: float) -> None:
        self.sid, self.t, self.events = sid, start, []

    def add(self, kind: str, page: str, dt: float, **fields) -> None:
        self.t += dt
        self.events.append(
            {"event_id": f"{self.sid}-{len(self.events)}", "ts": iso(self.t), "type": kind,
             "session_id": self.sid, "page": page, **fields}
        )  # fmt: skip

    def clicks(self, page: str, element: str, n: int, gap: float, step_px: float = 3.0, text: str | None = None):
        for i in range(n):
            extra = {"element_text": text} if text else {}
            self.add("click", page, gap if i else 5.0, element=element, x=100 + i * step_px, y=200, **extra)


def build_sessions(seed: int = 5) -> tuple[list[SessionWriter], Counter]:
    rng = random.Random(seed)
    expected: Counter = Counter()
    sessions = []
    for i in range(120):
        writer = SessionWriter(f"s{i}", T0 + i * 7.0)
        raw, label = rng.choice(list(PAGES.items()))
        page = raw.format(n=rng.randrange(100, 999))
        writer.add("page_view", page, 0.0)
        for _ in range(rng.randrange(1, 4)):
            case = rng.randrange(8)
            if case == 0:  # a burst, possibly long: counts once
                writer.clicks(page, "button#go", rng.randrange(3, 9), gap=rng.uniform(0.05, 0.99))
                expected[label] += 1
            elif case == 1:  # gaps just over a second
                writer.clicks(page, "button#go", 4, gap=1.001)
            elif case == 2:  # 30 px apart: not "within 30 px"
                writer.clicks(page, "button#go", 4, gap=0.3, step_px=30.0)
            elif case == 3:  # a scroll breaks the chain after two clicks
                writer.clicks(page, "button#go", 2, gap=0.3)
                writer.add("scroll", page, 0.1)
                writer.clicks(page, "button#go", 2, gap=0.3)
            elif case == 4:  # double and triple clicks select text in inputs
                writer.clicks(page, "input#coupon", 3, gap=0.2)
            elif case == 5:  # carousel arrows
                writer.clicks(page, "button.carousel-next", 5, gap=0.2, text="Next")
            elif case == 6:  # a selection between clicks breaks the chain, then a real burst
                writer.clicks(page, "a.link", 2, gap=0.2)
                writer.add("selection", page, 0.1)
                writer.clicks(page, "a.link", 3, gap=0.2)
                expected[label] += 1
            else:  # element changes mid-chain
                writer.clicks(page, "button#a", 2, gap=0.2)
                writer.clicks(page, "button#b", 2, gap=0.2)
        sessions.append(writer)
    return sessions, expected


def test_rage_clicks_per_page_are_exact(kafka_settings, worker):
    s = kafka_settings
    sessions, expected = build_sessions()
    records = []
    for writer in sessions:
        for start in range(0, len(writer.events), 5):  # browser SDK batches of five
            records.append((s.topic_clickstream, writer.sid.encode(), orjson.dumps(writer.events[start : start + 5])))
    produce(s, records)
    m = worker.wait_for(
        lambda m: sample(m, "cxpulse_messages_total", stream="clickstream") == len(records), what="clicks processed"
    )
    got = {dict(labels)["page"]: value for (name, labels), value in m.items() if name == "cxpulse_rage_clicks_total"}
    assert sum(expected.values()) >= 20
    assert got == {page: float(n) for page, n in expected.items()}
    assert sample(m, "cxpulse_events_rejected_total", stream="clickstream", reason="schema_violation") == 0
