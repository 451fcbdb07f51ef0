"""Rage-click rule: a fast burst of clicks on the same element of one session.

The rule follows PostHog's defaults (posthog-js ``rageclick.ts``): a click *chains* onto the
previous click of the session when it hits the same ``element``, comes **strictly less** than
``max_interval_s`` after it and lands **strictly less** than ``max_distance_px`` away from it
(Manhattan distance ``|dx| + |dy|``). When a chain reaches ``min_clicks`` clicks, one
``rage_click`` :class:`~detectors.signals.Signal` is emitted; further chained clicks extend the
same burst and emit nothing more. Datadog's false-positive guards are added: a ``selection`` or
``scroll`` event of the session between two clicks breaks the chain (the caller reports it via
:meth:`RageClickDetector.on_break`), and clicks on text-entry elements never chain (double and
triple clicks select text).

Coordinates: when both clicks carry ``x`` and ``y`` the distance test applies; when *neither*
carries coordinates (e.g. keyboard activation, some mobile SDKs) the distance test passes; when
only one of them has coordinates it fails (the chain restarts), as the clicks cannot be shown to
be close.

Out-of-order clicks (event time older than the last chained click) are ignored for chaining:
they neither extend nor reset the chain.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from typing import Final

from detectors.signals import RAGE_CLICK, Signal
from schemas.models import ClickstreamEvent

#: PostHog's default ignore list for element texts (compared case-insensitively, stripped).
DEFAULT_IGNORE_TEXTS: Final[tuple[str, ...]] = (
    "next",
    "previous",
    "prev",
    ">",
    "<",
    "+",
    "-",
    "−",
    "–",
)

#: ``input`` types that take typed text (a plain ``input`` without a type is text too).
TEXT_INPUT_TYPES: Final[frozenset[str]] = frozenset(
    {"text", "email", "password", "search", "tel", "url", "number"}
)

_COMBINATOR = re.compile(r"\s*[>+~]\s*|\s+(?![^\[]*\])")
_TAG = re.compile(r"^([a-zA-Z][\w-]*)")
_TYPE_ATTR = re.compile(r"\[\s*type\s*=\s*[\"']?([\w-]+)[\"']?\s*(?:[is]\s*)?\]", re.IGNORECASE)
_CONTENTEDITABLE = re.compile(
    r"\[\s*contenteditable\s*(?:=\s*[\"']?([\w-]*)[\"']?\s*)?\]", re.IGNORECASE
)


def is_text_entry(element: str) -> bool:
    """Return whether a CSS-like element selector designates a text-entry element.

    Only the last compound selector (after the last combinator) is inspected: ``textarea``;
    ``input`` without a ``type`` attribute or with ``type`` in :data:`TEXT_INPUT_TYPES`; any
    element with a ``contenteditable`` attribute not set to ``"false"``.

    Examples
    --------
    >>> is_text_entry("form#login > input[type=email]"), is_text_entry("input.q")
    (True, True)
    >>> is_text_entry("input[type='checkbox']"), is_text_entry("div[contenteditable]")
    (False, True)
    >>> is_text_entry("button.buy"), is_text_entry("textarea#msg")
    (False, True)
    """
    last = _COMBINATOR.split(element.strip())[-1]
    m = _CONTENTEDITABLE.search(last)
    if m is not None and (m.group(1) or "").lower() != "false":
        return True
    tag_m = _TAG.match(last)
    tag = tag_m.group(1).lower() if tag_m else ""
    if tag == "textarea":
        return True
    if tag == "input":
        t = _TYPE_ATTR.search(last)
        return t is None or t.group(1).lower() in TEXT_INPUT_TYPES
    return False


def compile_selector_patterns(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """Compile ignore patterns for element selectors into one case-insensitive regex.

    A pattern starting with ``re:`` is a regular expression searched anywhere in the selector
    (``re:^nav[ .#>]``); any other pattern is a shell glob (:mod:`fnmatch`: ``*``, ``?``, ``[..]``)
    that must match the whole selector (``*.carousel-arrow*``, ``button#qty-*``).

    Examples
    --------
    >>> rx = compile_selector_patterns(["*.pager*", "re:^nav[ .#>]"])
    >>> bool(rx.search("ul.pager > li")), bool(rx.search("nav a")), bool(rx.search("a.buy"))
    (True, True, False)
    """
    parts = []
    for p in patterns:
        if p.startswith("re:"):
            parts.append(f"(?:{p[3:]})")
        else:
            # fnmatch.translate gives "(?s:...)\Z"; anchor the start too for a full match.
            parts.append(f"(?:^{fnmatch.translate(p)})")
    if not parts:
        return None
    return re.compile("|".join(parts), re.IGNORECASE)


class RageClickState:
    """Per-session chain state of :class:`RageClickDetector`: only the last click and a count."""

    __slots__ = ("count", "element", "fired", "start", "ts", "x", "y")

    def __init__(self) -> None:
        self.count = 0
        self.element = ""
        self.ts = 0.0
        self.start = 0.0
        self.x: float | None = None
        self.y: float | None = None
        self.fired = False


class RageClickDetector:
    """Finds rage-click bursts; the rule object is shared, the chain state is per session.

    Parameters
    ----------
    min_clicks : int, default 3
        Chained clicks that make a burst (PostHog 3, Amplitude 4).
    max_interval_s : float, default 1.0
        A click chains only if it comes strictly less than this after the previous one.
    max_distance_px : float, default 30.0
        A click chains only if ``|dx| + |dy|`` to the previous one is strictly less than this.
    ignore_selectors : iterable of str, default ()
        Element selectors whose clicks never form a rage click: shell globs matched against the
        whole selector, or regexes prefixed with ``re:`` (see :func:`compile_selector_patterns`).
        Matching is case-insensitive.
    ignore_texts : iterable of str, default :data:`DEFAULT_IGNORE_TEXTS`
        Element texts (compared stripped and case-insensitively) whose clicks never form a rage
        click: pagers and steppers are clicked fast on purpose.
    exclude_text_entry : bool, default True
        Never chain clicks on text-entry elements (:func:`is_text_entry`).
    cache_size : int, default 8192
        Bound of each decision cache (per element string and per element text); a full cache
        is cleared, so memory stays bounded whatever the cardinality of selectors.

    Examples
    --------
    >>> from schemas.models import ClickstreamEvent
    >>> det = RageClickDetector()
    >>> st = det.new_state()
    >>> clicks = [ClickstreamEvent(f"e{i}", 100.0 + 0.3 * i, "click", "s1", "/cart",
    ...                            element="button#pay", x=10.0, y=10.0) for i in range(5)]
    >>> [s.detail["clicks"] for c in clicks if (s := det.on_click(st, c)) is not None]
    [3]
    """

    __slots__ = (
        "_element_cache",
        "_ignore_rx",
        "_ignore_texts",
        "_text_cache",
        "cache_size",
        "exclude_text_entry",
        "max_distance_px",
        "max_interval_s",
        "min_clicks",
    )

    def __init__(
        self,
        min_clicks: int = 3,
        max_interval_s: float = 1.0,
        max_distance_px: float = 30.0,
        ignore_selectors: Iterable[str] = (),
        ignore_texts: Iterable[str] = DEFAULT_IGNORE_TEXTS,
        exclude_text_entry: bool = True,
        cache_size: int = 8192,
    ) -> None:
        if min_clicks < 2:
            raise ValueError("min_clicks must be >= 2")
        self.min_clicks = min_clicks
        self.max_interval_s = max_interval_s
        self.max_distance_px = max_distance_px
        self.exclude_text_entry = exclude_text_entry
        self.cache_size = cache_size
        self._ignore_rx = compile_selector_patterns(ignore_selectors)
        self._ignore_texts = frozenset(t.strip().casefold() for t in ignore_texts)
        self._element_cache: dict[str, bool] = {}
        self._text_cache: dict[str, bool] = {}

    def new_state(self) -> RageClickState:
        """Return a fresh per-session chain state."""
        return RageClickState()

    def element_excluded(self, element: str) -> bool:
        """Whether clicks on ``element`` never chain (text entry or ignored selector); cached."""
        cache = self._element_cache
        r = cache.get(element)
        if r is None:
            r = (self.exclude_text_entry and is_text_entry(element)) or (
                self._ignore_rx is not None and self._ignore_rx.search(element) is not None
            )
            if len(cache) >= self.cache_size:
                cache.clear()
            cache[element] = r
        return r

    def text_ignored(self, text: str) -> bool:
        """Whether clicks on an element showing ``text`` never chain; cached."""
        cache = self._text_cache
        r = cache.get(text)
        if r is None:
            r = text.strip().casefold() in self._ignore_texts
            if len(cache) >= self.cache_size:
                cache.clear()
            cache[text] = r
        return r

    @staticmethod
    def on_break(state: RageClickState) -> None:
        """Break the chain (a ``selection`` or ``scroll`` happened in the session)."""
        state.count = 0

    def on_click(self, state: RageClickState, ev: ClickstreamEvent) -> Signal | None:
        """Feed one click of the session; return a signal when it completes a burst."""
        el = ev.element
        if (
            el is None
            or self.element_excluded(el)
            or (ev.element_text is not None and self.text_ignored(ev.element_text))
        ):
            state.count = 0
            return None
        ts = ev.ts
        x = ev.x
        y = ev.y
        if state.count:
            if ts < state.ts:
                return None  # out of order: ignored for chaining
            if el == state.element and ts - state.ts < self.max_interval_s:
                px = state.x
                py = state.y
                has = x is not None and y is not None
                had = px is not None and py is not None
                if has and had:
                    close = abs(x - px) + abs(y - py) < self.max_distance_px  # type: ignore[operator]
                else:
                    close = not has and not had
                if close:
                    state.count += 1
                    state.ts = ts
                    state.x = x
                    state.y = y
                    if state.count == self.min_clicks:
                        return Signal(
                            RAGE_CLICK,
                            ts,
                            ev.session_id,
                            ev.customer_id,
                            ev.page,
                            {
                                "element": el,
                                "clicks": state.count,
                                "burst_start": state.start,
                                "burst_end": ts,
                            },
                        )
                    return None
        state.count = 1
        state.element = el
        state.ts = ts
        state.start = ts
        state.x = x
        state.y = y
        return None
