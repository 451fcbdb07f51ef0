"""Cooldown, rolling daily cap, priority, duplicates, decided on plain candidates."""

from detectors.customer_signal import NotificationCandidate
from detectors.notification_policy import NotificationPolicy
from schemas.models import (
    NOTIFY_DELIVERY_DELAYED,
    NOTIFY_DELIVERY_FAILED,
    NOTIFY_DETRACTOR_FOLLOWUP,
    NOTIFY_FRUSTRATION_OUTREACH,
    NOTIFY_REPEAT_CONTACT,
)

H = 3600.0


def ev(i: str, t: str, ts: float, cust: str = "c") -> NotificationCandidate:
    return NotificationCandidate(t, i, cust, None, ts, {"customer_id": cust})


def test_cooldown_per_type() -> None:
    pol = NotificationPolicy()
    assert len(pol.decide([ev("a", NOTIFY_DELIVERY_DELAYED, 0)])[0]) == 1
    send, sup = pol.decide([ev("b", NOTIFY_DELIVERY_DELAYED, 23 * H), ev("c", NOTIFY_REPEAT_CONTACT, 23 * H)])
    assert [e.id for e in send] == ["c"] and sup[0][1] == "cooldown"
    assert len(pol.decide([ev("d", NOTIFY_DELIVERY_DELAYED, 24 * H)])[0]) == 1


def test_daily_cap_rolling_and_priority() -> None:
    pol = NotificationPolicy(daily_cap=3)
    batch = [ev("o", NOTIFY_FRUSTRATION_OUTREACH, 0), ev("r", NOTIFY_REPEAT_CONTACT, 0),
             ev("d", NOTIFY_DETRACTOR_FOLLOWUP, 0), ev("f", NOTIFY_DELIVERY_FAILED, 0)]  # fmt: skip
    send, sup = pol.decide(batch)
    assert [e.id for e in send] == ["f", "d", "r"]
    assert [(e.id, r) for e, r in sup] == [("o", "daily_cap")]
    assert pol.decide([ev("x", NOTIFY_DELIVERY_DELAYED, 23 * H)])[1][0][1] == "daily_cap"
    assert len(pol.decide([ev("y", NOTIFY_DELIVERY_DELAYED, 24 * H)])[0]) == 1


def test_duplicate_and_other_customers() -> None:
    pol = NotificationPolicy()
    a = ev("same", NOTIFY_DELIVERY_FAILED, 0)
    assert len(pol.decide([a])[0]) == 1
    assert pol.decide([a])[1][0][1] == "duplicate"
    assert len(pol.decide([ev("z", NOTIFY_DELIVERY_FAILED, 0, cust="other")])[0]) == 1
    assert pol.expire(10 * 24 * H) == 2 and not pol.store


def test_decides_on_the_millisecond_time_consumers_see() -> None:
    # The events carry their time in milliseconds (cut, not rounded): these two are exactly
    # 24 h apart on the wire, so the cooldown is over, as a consumer reading both would judge.
    pol = NotificationPolicy()
    assert pol.decide([ev("a", NOTIFY_DELIVERY_DELAYED, 0.0009)])[0]
    send, _ = pol.decide([ev("b", NOTIFY_DELIVERY_DELAYED, 24 * H + 0.0002)])
    assert [c.id for c in send] == ["b"]
    assert pol.store["c"]["sent"] == [0.0, 24 * H]
    # Equal times on the wire: the id breaks the tie, whatever the sub-millisecond order.
    send, _ = NotificationPolicy(daily_cap=1).decide(
        [ev("y", NOTIFY_REPEAT_CONTACT, 5.0001), ev("x", NOTIFY_REPEAT_CONTACT, 5.0009)]
    )
    assert [c.id for c in send] == ["x"]


def test_sends_the_candidates_themselves() -> None:
    candidate = NotificationCandidate(NOTIFY_REPEAT_CONTACT, "k", "c", "k3", 1.0, {"customer_id": "c", "n": [1]})
    send, _ = NotificationPolicy().decide([candidate])
    assert send == [candidate] and send[0].data == {"customer_id": "c", "n": [1]}
