"""Decay math, episodes, expiry, signal round trip."""

import math

import pytest

from detectors.customer_signal import NotificationCandidate
from detectors.frustration_score import CustomerSignal, FrustrationScore
from schemas.ids import frustration_outreach_id
from schemas.models import NOTIFY_FRUSTRATION_OUTREACH, NOTIFY_REPEAT_CONTACT

H = 3600.0


@pytest.mark.parametrize("hours", [0, 1, 6, 12, 30])
def test_half_life(hours: float) -> None:
    fs = FrustrationScore(half_life_s=6 * H, threshold=100)
    fs.observe(CustomerSignal("complaint", "c", 0.0, "k"))
    assert fs.score("c", hours * H) == pytest.approx(4 * 0.5 ** (hours / 6))


def test_episode_once_then_again_after_reset() -> None:
    fs = FrustrationScore(threshold=8)
    hits = [fs.observe(CustomerSignal("rage_click", "c", i * 60.0, f"s{i}")) for i in range(6)]
    assert [h is not None for h in hits] == [False, False, True, False, False, False]
    assert hits[2] is not None and len(hits[2].signals) == 3
    candidate = hits[2].candidate()
    assert (candidate.type, candidate.id, candidate.customer_id, candidate.subject, candidate.time) == (
        NOTIFY_FRUSTRATION_OUTREACH, frustration_outreach_id("c", 120.0), "c", None, 120.0
    )
    assert candidate.data["signals"][0] == {"kind": "rage_click", "time": "1970-01-01T00:00:00Z", "source_id": "s0"}
    late = 3 * 24 * H  # decayed below reset: a new episode with a new id
    again = [fs.observe(CustomerSignal("rage_click", "c", late + i, "x")) for i in range(3)]
    assert again[2] is not None and again[2].id != hits[2].id


def test_expiry_and_unknown_kind() -> None:
    fs = FrustrationScore(epsilon=0.05)
    fs.observe(CustomerSignal("dead_click", "c", 0.0, "s"))
    fs.observe(CustomerSignal("something_else", "d", 0.0, "s"))
    assert fs.score("d", 0.0) == 0.0
    drop_after = 6 * H * math.log2(1 / 0.05)
    fs.advance(drop_after + 1)
    assert "c" not in fs.store and "d" not in fs.store


def test_signal_round_trip() -> None:
    candidate = NotificationCandidate(NOTIFY_REPEAT_CONTACT, "x", "c", "k", 1.0, {"customer_id": "c"})
    s = CustomerSignal("repeat_contact", "c", 1.0, "k", {"a": 1}, candidate)
    assert CustomerSignal.from_dict(s.to_dict()) == s
