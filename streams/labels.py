"""Bounded label values: route templates for pages, and caps for every free-text label.

Prometheus keeps one time series per label combination, so a label that can take unbounded
values (order ids inside URLs, a typo'd carrier name) would grow memory without bound. Pages
are normalised to route templates (``/orders/8812`` -> ``/orders/:id``) and every labelled
dimension keeps at most N distinct values per worker; later newcomers become ``other``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

OTHER = "other"

#: Built-in id rules, applied to each path segment: numbers, UUIDs, long hex, and tokens that
#: mix letters with three or more digits (order numbers such as ``A12B34``) become ``:id``.
_ID_SEGMENT = re.compile(
    r"^(?:\d+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{16,}|(?=(?:[^0-9]*[0-9]){3})[A-Za-z0-9_-]{6,})$"
)


def parse_route_patterns(spec: str) -> list[tuple[re.Pattern[str], str]]:
    """``"^/track/[^/]+$=/track/:code, ..."`` to compiled (regex, template) pairs."""
    rules = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        pattern, sep, template = item.rpartition("=")
        if not sep or not pattern:
            raise ValueError(f"route pattern {item!r} is not of the form regex=template")
        rules.append((re.compile(pattern), template))
    return rules


class RouteNormalizer:
    """Turns a URL path into a bounded route template.

    >>> pages = RouteNormalizer(max_routes=4)
    >>> pages("/orders/8812?tab=1")
    '/orders/:id'
    >>> pages("/account/AB12CD34/settings/")
    '/account/:id/settings'
    >>> [pages(p) for p in ("/a", "/b", "/c")]
    ['/a', '/b', 'other']
    """

    def __init__(
        self,
        patterns: Iterable[tuple[re.Pattern[str], str]] = (),
        max_routes: int = 50,
        max_segments: int = 6,
    ) -> None:
        self.patterns = list(patterns)
        self.max_routes = max_routes
        self.max_segments = max_segments
        self._cap = LabelCap(max_routes)
        self._cache: dict[str, str] = {}

    def __call__(self, page: str) -> str:
        cached = self._cache.get(page)
        if cached is not None:
            return cached
        route = self._cap(self._template(page))
        if len(self._cache) < 100_000:  # raw paths can be unbounded; the cache must not be
            self._cache[page] = route
        return route

    def _template(self, page: str) -> str:
        path = page.split("?", 1)[0].split("#", 1)[0]
        for pattern, template in self.patterns:
            if pattern.search(path):
                return template
        segments = [s for s in path.split("/") if s][: self.max_segments]
        # isdecimal() is the regex's first alternative (\d+), without the regex: most ids are numbers.
        normalised = [":id" if s.isdecimal() or "@" in s or _ID_SEGMENT.match(s) else s for s in segments]
        return "/" + "/".join(normalised)


class LabelCap:
    """Keeps the first ``limit`` distinct values of a label; later ones become ``other``.

    >>> carriers = LabelCap(2)
    >>> [carriers(c) for c in ("dhl", "ups", "dhl", "acme")]
    ['dhl', 'ups', 'dhl', 'other']
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str | None) -> str:
        if value is None or value == "":
            return "unknown"
        if value in self._seen:
            return value
        if len(self._seen) < self.limit:
            self._seen.add(value)
            return value
        return OTHER
