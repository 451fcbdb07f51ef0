"""The records of cx.signals: plain JSON in both directions, malformed ones refused; DueIndex."""

from __future__ import annotations

import orjson
import pytest

from detectors.customer_signal import CustomerSignal, DueIndex, NotificationCandidate
from schemas.models import NOTIFY_DELIVERY_DELAYED

CANDIDATE = NotificationCandidate(
    type=NOTIFY_DELIVERY_DELAYED,
    id="9969bcbe-3e81-52bc-b9e2-cc84ad924cd9",
    customer_id="c-1",
    subject="o-1",
    time=1767200000.0004567,
    data={"order_id": "o-1", "customer_id": "c-1", "evidence": ["no scan for 30 h"], "confidence": 0.9712},
)


def test_a_signal_with_its_candidate_crosses_the_topic_as_plain_json() -> None:
    signal = CustomerSignal("delivery_delayed", "c-1", 1767200000.0004567, "o-1", {"carrier": "dhl"}, CANDIDATE)
    raw = orjson.dumps([signal.to_dict()])
    assert orjson.loads(raw)[0]["notification"] == {
        "type": NOTIFY_DELIVERY_DELAYED,
        "id": CANDIDATE.id,
        "customer_id": "c-1",
        "subject": "o-1",
        "time": 1767200000.0004567,
        "data": dict(CANDIDATE.data),
    }
    (back,) = [CustomerSignal.from_dict(item) for item in orjson.loads(raw)]
    assert back == signal
    assert back.notification is not None and back.notification.time == CANDIDATE.time  # not rounded on the way


def test_signals_without_a_candidate() -> None:
    signal = CustomerSignal("complaint", "c-1", 10.0, "k-1", {"reason": "delivery"})
    assert signal.to_dict()["notification"] is None
    assert CustomerSignal.from_dict(signal.to_dict()).notification is None


@pytest.mark.parametrize(
    "change",
    [
        {"type": "cx.notification.unknown"},
        {"type": "cx.alert.metric_anomaly"},
        {"id": ""},
        {"time": "yesterday"},
        {"data": 3},
    ],
)
def test_malformed_candidates_are_refused(change: dict) -> None:
    # The customers agent turns these errors into a dead letter instead of an unreadable event.
    with pytest.raises((KeyError, ValueError, TypeError)):
        NotificationCandidate.from_dict({**CANDIDATE.to_dict(), **change})


@pytest.mark.parametrize("missing", ["type", "id", "customer_id", "subject", "time", "data"])
def test_candidates_need_every_field(missing: str) -> None:
    fields = CANDIDATE.to_dict()
    del fields[missing]
    with pytest.raises(KeyError):
        NotificationCandidate.from_dict(fields)


def test_due_index_pops_in_due_order_and_supersedes() -> None:
    ix = DueIndex()
    for key, due in [("a", 5.0), ("b", 3.0), ("a", 9.0), ("c", 3.0)]:
        ix.schedule(key, due)
    assert list(ix.pop_due(6.0)) == [("b", 3.0), ("c", 3.0)]
    assert ix.next_due() == 9.0 and len(ix) == 1
