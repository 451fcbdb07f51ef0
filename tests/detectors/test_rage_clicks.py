"""Table-driven conformance tests of the rage-click rule (through the session facade)."""

from __future__ import annotations

import pytest

from detectors.frustration import FrustrationSignals
from detectors.rage_clicks import RageClickDetector, compile_selector_patterns, is_text_entry
from schemas.models import ClickstreamEvent

T0 = 1_700_000_000.0


def click(
    dt_ms: float,
    element: str = "button#buy",
    x: float | None = 100.0,
    y: float | None = 100.0,
    text: str | None = "Buy",
    sid: str = "s1",
) -> ClickstreamEvent:
    return ClickstreamEvent(
        f"c{dt_ms}",
        T0 + dt_ms / 1000,
        "click",
        sid,
        "/cart",
        element=element,
        element_text=text,
        x=x,
        y=y,
    )


def other(kind: str, dt_ms: float, sid: str = "s1") -> ClickstreamEvent:
    return ClickstreamEvent(f"o{dt_ms}", T0 + dt_ms / 1000, kind, sid, "/cart")


def rage_count(events: list[ClickstreamEvent], **kw: object) -> int:
    fs = FrustrationSignals(**kw)  # type: ignore[arg-type]
    return sum(1 for e in events for s in fs.process(e) if s.kind == "rage_click")


CASES: list[tuple[str, list[ClickstreamEvent], int, dict[str, object]]] = [
    ("three fast clicks", [click(0), click(300), click(600)], 1, {}),
    ("two clicks only", [click(0), click(300)], 0, {}),
    ("gap just under 1000 ms", [click(0), click(999), click(1998)], 1, {}),
    ("gap exactly 1000 ms", [click(0), click(1000), click(2000)], 0, {}),
    ("gap just over 1000 ms", [click(0), click(500), click(1501)], 0, {}),
    (
        "distance just under 30 px",
        [click(0, x=100), click(100, x=129), click(200, x=129, y=100)],
        1,
        {},
    ),
    (
        "distance exactly 30 px (dx+dy)",
        [click(0), click(100, x=115, y=115), click(200, x=130, y=130)],
        0,
        {},
    ),
    ("distance just over 30 px", [click(0), click(100, x=131), click(200, x=131)], 0, {}),
    (
        "manhattan, not euclidean: 20+20 px",
        [click(0), click(100, x=120, y=120), click(200, x=120, y=120)],
        0,
        {},
    ),
    (
        "element changes mid-burst",
        [click(0), click(100), click(200, element="button#other"), click(300)],
        0,
        {},
    ),
    (
        "selection breaks the burst",
        [click(0), click(100), other("selection", 150), click(200)],
        0,
        {},
    ),
    ("scroll breaks the burst", [click(0), click(100), other("scroll", 150), click(200)], 0, {}),
    (
        "page_view does not break",
        [click(0), click(100), other("page_view", 150), click(200)],
        1,
        {},
    ),
    (
        "scroll of another session does not break",
        [click(0), click(100), other("scroll", 150, sid="s2"), click(200)],
        1,
        {},
    ),
    ("long burst counted once", [click(i * 200) for i in range(30)], 1, {}),
    (
        "two bursts separated by a pause",
        [click(0), click(200), click(400), click(2000), click(2200), click(2400)],
        2,
        {},
    ),
    (
        "two bursts separated by a scroll",
        [
            click(0),
            click(200),
            click(400),
            other("scroll", 500),
            click(600),
            click(800),
            click(1000),
        ],
        2,
        {},
    ),
    (
        "textarea never",
        [click(i * 100, element="form > textarea#msg", text=None) for i in range(5)],
        0,
        {},
    ),
    (
        "text input never",
        [click(i * 100, element="input[type=email]", text=None) for i in range(5)],
        0,
        {},
    ),
    (
        "untyped input never",
        [click(i * 100, element="input#q", text=None) for i in range(5)],
        0,
        {},
    ),
    (
        "contenteditable never",
        [click(i * 100, element="div[contenteditable]", text=None) for i in range(5)],
        0,
        {},
    ),
    (
        "checkbox input counts",
        [click(i * 100, element="input[type=checkbox]", text=None) for i in range(3)],
        1,
        {},
    ),
    ("ignored text 'Next'", [click(i * 100, text=" Next ") for i in range(5)], 0, {}),
    ("ignored text '+' stepper", [click(i * 100, text="+") for i in range(5)], 0, {}),
    ("ignored text '−' (minus sign)", [click(i * 100, text="−") for i in range(5)], 0, {}),
    ("non-ignored text 'Nextday'", [click(i * 100, text="Nextday") for i in range(3)], 1, {}),
    (
        "ignored selector glob",
        [click(i * 100, element="ul.pager > li.arrow") for i in range(5)],
        0,
        {"ignore_selectors": ["*.pager*"]},
    ),
    (
        "ignored selector regex",
        [click(i * 100, element="button#qty-up") for i in range(5)],
        0,
        {"ignore_selectors": ["re:#qty-(up|down)$"]},
    ),
    (
        "selector list does not over-match",
        [click(i * 100) for i in range(3)],
        1,
        {"ignore_selectors": ["*.pager*", "re:#qty-"]},
    ),
    (
        "both clicks without coordinates chain",
        [click(i * 100, x=None, y=None) for i in range(3)],
        1,
        {},
    ),
    (
        "one click without coordinates breaks",
        [click(0), click(100, x=None, y=None), click(200)],
        0,
        {},
    ),
    (
        "out-of-order click ignored for chaining",
        [click(0), click(300), click(100), click(600)],
        1,
        {},
    ),
    ("min_clicks=4 (Amplitude)", [click(i * 100) for i in range(3)], 0, {"rage_min_clicks": 4}),
    (
        "custom interval 300 ms (OpenReplay)",
        [click(0), click(400), click(800)],
        0,
        {"rage_max_interval_s": 0.3},
    ),
]


@pytest.mark.parametrize(("name", "events", "expected", "kw"), CASES, ids=[c[0] for c in CASES])
def test_rage_rule(
    name: str, events: list[ClickstreamEvent], expected: int, kw: dict[str, object]
) -> None:
    assert rage_count(events, **kw) == expected, name


def test_signal_detail_and_emit_on_third_click() -> None:
    fs = FrustrationSignals()
    out = [fs.process(e) for e in [click(0), click(300), click(600), click(900)]]
    assert [len(o) for o in out] == [0, 0, 1, 0]
    sig = out[2][0]
    assert sig.kind == "rage_click" and sig.session_id == "s1" and sig.page == "/cart"
    assert sig.ts == pytest.approx(T0 + 0.6)
    assert sig.detail == {
        "element": "button#buy",
        "clicks": 3,
        "burst_start": T0,
        "burst_end": pytest.approx(T0 + 0.6),
    }


@pytest.mark.parametrize(
    ("sel", "expected"),
    [
        ("textarea", True),
        ("input", True),
        ("input[type=text]", True),
        ('input[type="password"]', True),
        ("input[type='search' i]", True),
        ("input[type=number].qty", True),
        ("INPUT[TYPE=URL]", True),
        ("input[type=tel]", True),
        ("input[type=submit]", False),
        ("input[type=radio]", False),
        ("button", False),
        ("div[contenteditable=true]", True),
        ("div[contenteditable='false']", False),
        ("form input[type=submit]", False),
        ("div.editor > p[contenteditable]", True),
        ("textarea.x > button", False),
        ("a[href='/x y']", False),
    ],
)
def test_is_text_entry(sel: str, expected: bool) -> None:
    assert is_text_entry(sel) is expected


def test_selector_patterns_empty() -> None:
    assert compile_selector_patterns([]) is None


def test_caches_are_bounded() -> None:
    det = RageClickDetector(cache_size=100)
    st = det.new_state()
    for i in range(1000):
        det.on_click(st, click(i, element=f"button#b{i}", text=f"t{i}"))
    assert len(det._element_cache) <= 100 and len(det._text_cache) <= 100


def test_min_clicks_validated() -> None:
    with pytest.raises(ValueError):
        RageClickDetector(min_clicks=1)
