from __future__ import annotations

import pytest

from streams.labels import OTHER, LabelCap, RouteNormalizer, parse_route_patterns


@pytest.mark.parametrize(
    ("page", "route"),
    [
        ("/orders/8812", "/orders/:id"),
        ("/orders/8812/track?x=1#top", "/orders/:id/track"),
        ("/u/3f2b8c1e-1a2b-4c3d-9e8f-001122334455", "/u/:id"),
        ("/returns/RMA12345", "/returns/:id"),
        ("/users/jane@example.com/prefs", "/users/:id/prefs"),
        ("/checkout", "/checkout"),
        ("/", "/"),
        ("/help/shipping-and-delivery", "/help/shipping-and-delivery"),
    ],
)
def test_pages_become_route_templates(page, route):
    assert RouteNormalizer()(page) == route


def test_configured_patterns_win_over_builtin_rules():
    pages = RouteNormalizer(parse_route_patterns(r"^/track/[^/]+$=/track/:code"))
    assert pages("/track/abc") == "/track/:code"


def test_bad_pattern_spec_is_refused():
    with pytest.raises(ValueError, match="regex=template"):
        parse_route_patterns("no-equals-sign")


def test_routes_are_capped():
    pages = RouteNormalizer(max_routes=2)
    routes = {pages(f"/section-{i}") for i in range(100)}
    assert routes == {"/section-0", "/section-1", OTHER}


def test_label_cap_keeps_first_values_and_maps_missing():
    cap = LabelCap(1)
    assert [cap("a"), cap("b"), cap("a"), cap(None), cap("")] == ["a", OTHER, "a", "unknown", "unknown"]
