"""Throughput of FrustrationSignals on a realistic clickstream mix.

Builds the events first (parsing is not measured), then times ``process`` over them, with an
``expire`` call every 10k events as the clickstream agent would do. Prints events/s.

Usage: ``.venv/bin/python bench/bench_frustration.py [n_events] [n_sessions]``
"""

from __future__ import annotations

import random
import sys
import time

from detectors.frustration import FrustrationSignals
from schemas.models import ClickstreamEvent

PAGES = [f"/p/{i}" for i in range(200)] + ["/cart", "/checkout", "/login", "/search"]
ELEMENTS = [f"button#b{i}" for i in range(300)] + [
    "a.nav",
    "input[type=text]",
    "textarea#msg",
    "input#q",
    "ul.pager > li",
    "div.card",
]
TEXTS = ["Buy", "Next", "Add", "+", "Submit", None, "Details", "More"]


def make_events(n: int, n_sessions: int, seed: int = 7) -> list[ClickstreamEvent]:
    """A time-ordered mix of page views 15%, clicks 45%, scrolls 25%, selections 5%, errors 3%,
    logins 2%, spread over ``n_sessions`` live sessions, with rage bursts in ~2% of clicks."""
    rng = random.Random(seed)
    out: list[ClickstreamEvent] = []
    t = 1_700_000_000.0
    sessions = [f"sess-{i}" for i in range(n_sessions)]
    custs = [f"cust-{i}" if i % 3 else None for i in range(n_sessions)]
    i = 0
    while len(out) < n:
        i += 1
        t += 0.0005
        k = rng.randrange(n_sessions)
        sid = sessions[k]
        cust = custs[k]
        page = PAGES[rng.randrange(len(PAGES))]
        r = rng.random()
        if r < 0.15:
            out.append(ClickstreamEvent(f"e{i}", t, "page_view", sid, page, cust))
        elif r < 0.60:
            el = ELEMENTS[rng.randrange(len(ELEMENTS))]
            x, y = rng.uniform(0, 1200), rng.uniform(0, 800)
            txt = TEXTS[rng.randrange(len(TEXTS))]
            nr = rng.random() < 0.02
            burst = 3 + rng.randrange(4) if rng.random() < 0.02 else 1
            for j in range(burst):
                out.append(
                    ClickstreamEvent(
                        f"e{i}.{j}",
                        t + 0.15 * j,
                        "click",
                        sid,
                        page,
                        cust,
                        element=el,
                        element_text=txt,
                        x=x + j,
                        y=y,
                        no_response=nr,
                    )
                )
        elif r < 0.85:
            out.append(ClickstreamEvent(f"e{i}", t, "scroll", sid, page, cust))
        elif r < 0.90:
            out.append(ClickstreamEvent(f"e{i}", t, "selection", sid, page, cust))
        elif r < 0.93:
            out.append(ClickstreamEvent(f"e{i}", t, "error", sid, page, cust, message="E"))
        elif r < 0.95:
            out.append(
                ClickstreamEvent(f"e{i}", t, "login", sid, page, cust, success=rng.random() < 0.5)
            )
        else:
            out.append(ClickstreamEvent(f"e{i}", t, "page_view", sid, page, cust))
    return out[:n]


def run(events: list[ClickstreamEvent]) -> tuple[float, int]:
    fs = FrustrationSignals()
    process = fs.process
    n_signals = 0
    t0 = time.perf_counter()
    for i, e in enumerate(events):
        if process(e):
            n_signals += 1
        if i % 10_000 == 0:
            fs.expire(e.ts)
    dt = time.perf_counter() - t0
    return len(events) / dt, n_signals


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    n_sessions = int(sys.argv[2]) if len(sys.argv) > 2 else 50_000
    events = make_events(n, n_sessions)
    best = 0.0
    for _ in range(3):
        rate, n_signals = run(events)
        best = max(best, rate)
    print(
        f"events={n} sessions={n_sessions} events_with_signals={n_signals} "
        f"throughput={best:,.0f} events/s (best of 3, one core)"
    )


if __name__ == "__main__":
    main()
