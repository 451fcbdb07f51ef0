"""Output ids: each recipe gives the value it has always given (ids are a public contract).

The expected values were recorded with the code before the ids moved here (issue 9: the
detectors' ``cloudevent_id`` calls and ``detectors.episodes``' alert ids). A failure here means
consumers would see known events as new ones.
"""

from __future__ import annotations

import pytest

from schemas import ids

T = 1767225600.25  # 2026-01-01T00:00:00.250Z
ALERT = "11c0eb13-205d-5a78-9f6d-fb61c5d8a5f9"


@pytest.mark.parametrize(
    ("made", "recorded"),
    [
        (ids.delivery_delayed_id("c-1", "o-1", 1767225600.4), "9969bcbe-3e81-52bc-b9e2-cc84ad924cd9"),
        (ids.delivery_failed_id("c-1", "o-1", "exception", T), "a35222e8-e24c-59ef-ae19-971a4508fcd6"),
        (ids.repeat_contact_id("c-1", "k-3"), "525e5e4e-d2ca-5cb4-80bd-eff3862b3204"),
        (ids.detractor_followup_id("c-1", "k-3", T), "20a5143f-c2dd-5abe-8d19-40a6ce2c50c8"),
        (ids.detractor_followup_id("c-1", None, T), "a41e02d4-d910-5dd8-88f8-8254741dad84"),
        (ids.frustration_outreach_id("c-1", 1767225600.0), "34f2c557-316a-5a51-bbbf-7b3778108a15"),
        (ids.alert_id('complaints{reason="billing"}', 1767225600.0), ALERT),
        (ids.alert_event_id(ALERT, "firing"), "5bb00bb9-1d86-5988-ae5c-9b0d3c5acdf7"),
        (ids.alert_event_id(ALERT, "resolved"), "4de540b7-9eb4-58b8-9cc5-e08a63e820af"),
    ],
)
def test_recipes_give_the_recorded_ids(made: str, recorded: str) -> None:
    assert made == recorded


def test_what_the_cause_is_made_of() -> None:
    # A promise counts to the second, a scan or an episode to the millisecond.
    assert ids.delivery_delayed_id("c", "o", 100.4) == ids.delivery_delayed_id("c", "o", 99.6)
    assert ids.delivery_delayed_id("c", "o", 100.0) != ids.delivery_delayed_id("c", "o", 101.0)
    assert ids.delivery_failed_id("c", "o", "exception", 1.0001) == ids.delivery_failed_id("c", "o", "exception", 1.0)
    assert ids.delivery_failed_id("c", "o", "exception", 1.0) != ids.delivery_failed_id("c", "o", "exception", 1.002)
    assert ids.alert_id("s", 10.0) != ids.alert_id("s", 10.002)
    # Without a contact, the survey time tells detractor answers apart.
    assert ids.detractor_followup_id("c", None, 1.0) != ids.detractor_followup_id("c", None, 2.0)
    assert ids.detractor_followup_id("c", "", 1.0) == ids.detractor_followup_id("c", None, 1.0)


def test_schemes_keep_their_namespace_and_separator() -> None:
    assert str(ids.NOTIFICATION_IDS.namespace) == "bb25b6b8-2014-578c-b144-01b001bd475a"
    assert str(ids.ALERT_IDS.namespace) == "6f1c1f8e-3c2b-5b8e-9a57-2f0c1d9e4b11"
    assert ids.NOTIFICATION_IDS.derive("ab", "c") != ids.NOTIFICATION_IDS.derive("a", "bc")
    assert ids.ALERT_IDS.derive("a", "b") == ids.ALERT_IDS.derive("a|b")
    assert ids.NOTIFICATION_IDS.derive("a", "b") != ids.ALERT_IDS.derive("a", "b")
