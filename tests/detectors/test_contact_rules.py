"""Repeat-contact window and detractor thresholds."""

import pytest

from detectors.contact_rules import DetractorRule, RepeatContactRule
from schemas.ids import detractor_followup_id, repeat_contact_id
from schemas.models import NOTIFY_DETRACTOR_FOLLOWUP, NOTIFY_REPEAT_CONTACT, ContactEvent

DAY = 86400.0


def opened(i: int, ts: float, cust: str = "c") -> ContactEvent:
    return ContactEvent(f"e{i}", ts, "contact_opened", cust, contact_id=f"k{i}", channel="chat",
                        reason="delivery")


@pytest.mark.parametrize(
    ("times", "fires"),
    [((0, 1, 2), [False, False, True]),
     ((0, 3, 7), [False, False, True]),          # 3rd exactly 7 days after the 1st: inside
     ((0, 3, 7.001), [False, False, False]),     # just after 7 days: no
     ((0, 1, 2, 3), [False, False, True, False]),  # 4th in same window does not fire again
     ],
)
def test_repeat_contact_window(times: tuple[float, ...], fires: list[bool]) -> None:
    rule = RepeatContactRule()
    got = [rule.process(opened(i, t * DAY)) is not None for i, t in enumerate(times)]
    assert got == fires


def test_repeat_contact_payload_and_expiry() -> None:
    rule = RepeatContactRule()
    hit = [rule.process(opened(i, i * 3600.0)) for i in range(3)][-1]
    assert hit is not None and hit.contact_ids == ("k0", "k1", "k2")
    candidate = hit.candidate()
    assert (candidate.type, candidate.id, candidate.customer_id, candidate.subject, candidate.time) == (
        NOTIFY_REPEAT_CONTACT, repeat_contact_id("c", "k2"), "c", "k2", 2 * 3600.0
    )
    assert candidate.data == {"customer_id": "c", "contact_ids": ["k0", "k1", "k2"],
                              "reasons": ["delivery"] * 3, "channels": ["chat"] * 3}  # fmt: skip
    signal = hit.to_signal()
    assert (signal.kind, signal.source_id, signal.detail, signal.notification) == (
        "repeat_contact", "k2", {"count": 3}, candidate
    )
    rule.advance(30 * DAY)
    assert len(rule.store) == 0


@pytest.mark.parametrize(
    ("csat", "nps", "ces", "detractor"),
    [(2, None, None, True), (3, None, None, False), (None, 6, None, True),
     (None, 7, None, False), (None, None, 6, True), (None, None, 5, False),
     (None, None, None, False)],
)
def test_detractor_boundaries(csat, nps, ces, detractor) -> None:  # type: ignore[no-untyped-def]
    rule = DetractorRule()
    ev = ContactEvent("e", 0.0, "survey_response", "c", contact_id="k", csat=csat, nps=nps, ces=ces)
    assert (rule.process(ev) is not None) is detractor


def test_detractor_reason_comes_from_the_survey_first_then_its_contact() -> None:
    rule = DetractorRule()
    own = rule.process(ContactEvent("s0", 1.0, "survey_response", "c", contact_id="k0", csat=1, reason="billing"),
                       contact_reason="delivery")
    borrowed = rule.process(ContactEvent("s1", 1.0, "survey_response", "c", contact_id="k1", csat=1),
                            contact_reason="delivery")
    assert own is not None and own.reason == "billing"
    assert borrowed is not None and borrowed.reason == "delivery"


def test_a_customer_far_ahead_does_not_expire_another_customers_history() -> None:
    """Catch-up: customer b's partition runs 10 days ahead; a's history must survive it."""
    rule = RepeatContactRule(threshold=3, window_s=7 * 86400.0)

    def opened(cid: str, i: int, day: float) -> ContactEvent:
        return ContactEvent(f"{cid}{i}", day * 86400.0, "contact_opened", cid, contact_id=f"{cid}-k{i}",
                            channel="chat", reason="delivery")

    assert rule.process(opened("a", 0, 0.0)) is None
    assert rule.process(opened("a", 1, 1.0)) is None
    assert rule.process(opened("b", 0, 10.0)) is None  # another partition, far ahead
    assert rule.process(opened("a", 2, 2.0)) is not None  # a's third contact within 7 days
    rule.advance(2.0 * 86400.0 + 7 * 86400.0 + 1.0)  # the watermark passes a's window: now it goes
    assert "a" not in rule.store and "b" in rule.store


def test_detractor_candidate_without_a_contact() -> None:
    rule = DetractorRule()
    hit = rule.process(ContactEvent("s", 7.5, "survey_response", "c", nps=3, reason="billing"))
    assert hit is not None
    candidate = hit.candidate()
    assert (candidate.type, candidate.id, candidate.subject, candidate.time) == (
        NOTIFY_DETRACTOR_FOLLOWUP, detractor_followup_id("c", None, 7.5), None, 7.5
    )
    assert candidate.data == {"customer_id": "c", "contact_id": None,
                              "scores": {"csat": None, "nps": 3, "ces": None}, "reason": "billing"}  # fmt: skip
    assert hit.to_signal().notification == candidate
