"""Cooldown, rolling daily cap, priority, duplicates."""

from detectors.notification_policy import NotificationPolicy
from schemas import cloudevents as ce

H = 3600.0


def ev(i: str, t: str, ts: float, cust: str = "c") -> dict:
    return ce.make_cloudevent(type=t, source="/x", subject=None, time=ts,
                              data={"customer_id": cust}, dataschema="s", id=i)


def test_cooldown_per_type() -> None:
    pol = NotificationPolicy()
    assert len(pol.decide([ev("a", ce.NOTIFY_DELIVERY_DELAYED, 0)])[0]) == 1
    send, sup = pol.decide([ev("b", ce.NOTIFY_DELIVERY_DELAYED, 23 * H),
                            ev("c", ce.NOTIFY_REPEAT_CONTACT, 23 * H)])
    assert [e["id"] for e in send] == ["c"] and sup[0][1] == "cooldown"
    assert len(pol.decide([ev("d", ce.NOTIFY_DELIVERY_DELAYED, 24 * H)])[0]) == 1


def test_daily_cap_rolling_and_priority() -> None:
    pol = NotificationPolicy(daily_cap=3)
    batch = [ev("o", ce.NOTIFY_FRUSTRATION_OUTREACH, 0), ev("r", ce.NOTIFY_REPEAT_CONTACT, 0),
             ev("d", ce.NOTIFY_DETRACTOR_FOLLOWUP, 0), ev("f", ce.NOTIFY_DELIVERY_FAILED, 0)]
    send, sup = pol.decide(batch)
    assert [e["id"] for e in send] == ["f", "d", "r"]
    assert [(e["id"], r) for e, r in sup] == [("o", "daily_cap")]
    assert pol.decide([ev("x", ce.NOTIFY_DELIVERY_DELAYED, 23 * H)])[1][0][1] == "daily_cap"
    assert len(pol.decide([ev("y", ce.NOTIFY_DELIVERY_DELAYED, 24 * H)])[0]) == 1


def test_duplicate_and_other_customers() -> None:
    pol = NotificationPolicy()
    a = ev("same", ce.NOTIFY_DELIVERY_FAILED, 0)
    assert len(pol.decide([a])[0]) == 1
    assert pol.decide([a])[1][0][1] == "duplicate"
    assert len(pol.decide([ev("z", ce.NOTIFY_DELIVERY_FAILED, 0, cust="other")])[0]) == 1
    assert pol.expire(10 * 24 * H) == 2 and not pol.store
