"""Fleet-wide series (streams/series.py): partials per input partition, owners, checkpoints.

Unit tests on hand-made events and records, then the golden world split between two in-process
"workers" and a crash with a restore from checkpoints (no Kafka).
"""

from __future__ import annotations

import pickle
from datetime import UTC, datetime

import orjson
import pytest
from prometheus_client import CollectorRegistry

from detectors.episodes import AlertEvent
from schemas import cloudevents as ce
from schemas.ids import alert_event_id, alert_id
from streams.contacts import ContactsHandler
from streams.metrics import Metrics
from streams.pipeline import Context, Outputs, Record
from streams.series import PARTIAL, PROGRESS, SeriesOwnerHandler
from streams.settings import Settings
from streams.topics import Topic
from tests.inprocess import GOLDEN_WORLD, Fleet, Worker, run_world, world_messages

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC).timestamp()  # a whole minute: step T0 // 60 starts here
K0 = int(T0 // 60)
SERIES = 'complaints{reason="billing"}'


def iso(offset: float) -> str:
    return datetime.fromtimestamp(T0 + offset, UTC).isoformat()


def make_ctx(partitions: int = 2) -> Context:
    return Context.create(Settings(partitions=partitions), Metrics(CollectorRegistry()))


def complaint(n: int, offset: float, reason: str = "billing") -> bytes:
    return orjson.dumps({
        "event_id": f"e{n}", "ts": iso(offset), "type": "contact_opened", "contact_id": f"k{n}",
        "customer_id": f"c{n}", "channel": "phone", "reason": reason, "complaint": True,
    })  # fmt: skip


def series_records(out: Outputs) -> list[Record]:
    return [r for r in out.records if r.topic == Topic.SERIES]


def decoded(records: list[Record]) -> list[dict]:
    return [orjson.loads(r.value) for r in records]


def partials(records: list[Record], series: str = SERIES) -> list[dict]:
    return [d for d in decoded(records) if d["type"] == PARTIAL and d["series"] == series]


def progress(records: list[Record]) -> list[tuple[int | None, dict]]:
    return [(r.partition, orjson.loads(r.value)) for r in records if orjson.loads(r.value)["type"] == PROGRESS]


def value(ctx: Context, name: str, **labels: str) -> float | None:
    return ctx.metrics.registry.get_sample_value(name, labels)


# -- partials upstream ---------------------------------------------------------------------


def test_partials_are_emitted_per_partition_when_that_partitions_clock_passes_the_step():
    h = ContactsHandler(make_ctx(partitions=2))
    h.event_clock.assign([0, 1])
    out = series_records(h.handle(complaint(1, 5), partition=0, offset=0))
    assert {m["through"] for _, m in progress(out)} == {K0 - 2}  # the steps before its first event
    assert not partials(out)
    assert not partials(series_records(h.handle(complaint(2, 30), partition=0, offset=1)))
    assert not partials(series_records(h.handle(complaint(3, 20), partition=1, offset=0)))
    # Partition 0 at 65 s: step K0 ends at 60, plus 10 s grace: not yet.
    assert not partials(series_records(h.handle(complaint(4, 65), partition=0, offset=2)))
    out = series_records(h.handle(complaint(5, 71), partition=0, offset=3))
    # Its own two complaints of step K0 only (partition 1's is its own partial), keyed by series.
    (partial,) = partials(out)
    assert (partial["stream"], partial["partition"], partial["step"], partial["sum"], partial["count"]) == (
        "contacts", 0, K0, 2.0, 2.0
    )  # fmt: skip
    assert (partial["step_s"], partial["kind"], partial["labels"]) == (60.0, "count", {"reason": "billing"})
    assert {r.key for r in out if orjson.loads(r.value)["type"] == PARTIAL} == {
        SERIES.encode(), b'complaints_by_channel{channel="phone"}'
    }  # fmt: skip
    # Then progress of partition 0 through K0 to every partition of cx.series, after the partials.
    marks = progress(out)
    assert [p for p, _ in marks] == [0, 1]
    assert {(m["stream"], m["partition"], m["through"], m["first"]) for _, m in marks} == {("contacts", 0, K0, K0)}
    assert out[-1].partition == 1 and out[0].partition is None
    # Partition 1 has not passed K0: nothing of it yet, whatever partition 0 does.
    assert not [d for d in decoded(series_records(h.handle(complaint(6, 200), partition=0, offset=4)))
                if d["partition"] == 1]  # fmt: skip


def test_an_event_in_a_step_its_partition_already_emitted_is_late_for_the_series():
    h = ContactsHandler(make_ctx(partitions=1))
    h.handle(complaint(1, 5), partition=0, offset=0)
    h.handle(complaint(2, 75), partition=0, offset=1)  # emits K0
    out = h.handle(complaint(3, 50), partition=0, offset=2)  # 25 s behind its clock: not late for the stream
    assert h.monitor.late_events == 2  # complaints and complaints_by_channel
    assert not partials(series_records(out))
    out = h.handle(complaint(4, 140), partition=0, offset=3)
    (partial,) = partials(series_records(out))
    assert (partial["step"], partial["sum"]) == (K0 + 1, 1.0)  # the late one went nowhere


def test_an_idle_partition_reports_progress_at_the_watermark():
    wall = [0.0]
    h = ContactsHandler(make_ctx(partitions=2))
    h.event_clock._wall = lambda: wall[0]
    h.event_clock.assign([0, 1])
    h.handle(complaint(1, 5), partition=0, offset=0)
    wall[0] = 10.0
    out = series_records(h.handle(complaint(2, 300), partition=0, offset=1))
    assert {m["partition"] for _, m in progress(out)} == {0}  # partition 1 is not idle yet
    wall[0] = 100.0  # partition 1 silent for longer than idle_s (30 s), no backlog known
    h.handle(complaint(3, 301), partition=0, offset=2)
    out = series_records(h.handle(complaint(4, 400), partition=0, offset=3))
    idle = {m["through"] for _, m in progress(out) if m["partition"] == 1}
    assert idle == {K0 + (400 - 10) // 60 - 1}  # the watermark's time: partition 0's clock
    # Its later events in steps so reported are late.
    h.handle(complaint(5, 100), partition=1, offset=0)
    assert h.monitor.late_events >= 1


# -- owners --------------------------------------------------------------------------------


def partial_record(partition: int, step: int, total: float, series: str = SERIES, resend: bool = False) -> bytes:
    record = {"type": PARTIAL, "stream": "contacts", "partition": partition, "step": step, "step_s": 60.0,
              "series": series, "labels": {"reason": "billing"}, "kind": "count",
              "sum": total, "count": total}  # fmt: skip
    if resend:
        record["resend"] = True
    return orjson.dumps(record)


def progress_record(partition: int, through: int, first: int | None = K0, stream: str = "contacts") -> bytes:
    step_s = 3600.0 if stream == "deliveries" else 60.0
    return orjson.dumps({"type": PROGRESS, "stream": stream, "partition": partition, "through": through,
                         "first": first, "step_s": step_s})  # fmt: skip


class Owner:
    """An owner of cx.series partition 0 with its own offsets, over ``partitions`` input partitions."""

    def __init__(self, partitions: int = 2, ctx: Context | None = None) -> None:
        self.ctx = ctx or make_ctx(partitions)
        self.handler = SeriesOwnerHandler(self.ctx)
        self.offset = 0

    def send(self, *records: bytes) -> list[dict]:
        alerts = []
        for record in records:
            out = self.handler.handle(record, None, 0, self.offset)
            self.offset += 1
            alerts += [orjson.loads(r.value) for r in out.records if r.topic == Topic.ALERTS]
        return alerts

    def watcher(self):
        return self.handler._owned[0].watchers["contacts"]


def steps_of(first: int, last: int, per_step: float, partitions: int = 2) -> list[bytes]:
    """Partials of ``per_step`` (split over the partitions) and progress, for steps first..last."""
    records = []
    for k in range(first, last + 1):
        records += [partial_record(p, k, per_step / partitions) for p in range(partitions)]
        records += [progress_record(p, k) for p in range(partitions)]
    return records


def baseline_then_spike(owner: Owner, partitions: int = 2, steps: int = 70) -> list[dict]:
    """``steps`` quiet steps (3 per step split over partitions), then 5 steps of a spike of 40."""
    alerts = owner.send(*steps_of(K0, K0 + steps - 1, 3.0, partitions))
    return alerts + owner.send(*steps_of(K0 + steps, K0 + steps + 4, 40.0, partitions))


def test_a_step_closes_only_when_every_input_partition_passed_it():
    owner = Owner(partitions=3)
    owner.send(partial_record(0, K0, 2), partial_record(1, K0, 3), progress_record(0, K0), progress_record(1, K0 + 5))
    assert owner.handler._owned[0].closed == {}  # partition 2 has not reported
    owner.send(progress_record(2, K0 - 1))
    assert owner.handler._owned[0].closed == {"contacts": K0 - 1}  # partition 2 not through K0 yet
    assert SERIES not in owner.watcher()._series
    owner.send(partial_record(2, K0, 4), progress_record(2, K0))
    assert owner.handler._owned[0].closed == {"contacts": K0}
    series = owner.watcher()._series[SERIES]
    assert series.last_observed == 9.0  # 2 + 3 + 4, summed over partitions
    assert series.next_step == K0 + 1
    # A partial for the closed step is counted and dropped; a resend of it is dropped silently.
    owner.send(partial_record(0, K0, 100), partial_record(0, K0, 2, resend=True))
    assert value(owner.ctx, "cxpulse_series_late_partials_total", stream="contacts") == 1
    # Streams are independent: contacts' progress does not close deliveries' steps.
    owner.send(progress_record(0, 10, stream="deliveries"))
    assert "deliveries" not in owner.handler._owned[0].closed


def test_a_resent_partial_overwrites_instead_of_adding():
    owner = Owner(partitions=1)
    owner.send(partial_record(0, K0, 5), partial_record(0, K0, 5), progress_record(0, K0))
    assert owner.watcher()._series[SERIES].last_observed == 5.0


def test_the_owner_raises_one_alert_per_episode_on_the_summed_series():
    owner = Owner(partitions=2)
    alerts = baseline_then_spike(owner)
    assert [a["data"]["status"] for a in alerts] == ["firing"]
    assert alerts[0]["source"] == "/cxpulse/contacts"
    assert alerts[0]["type"] == "cx.alert.complaint_spike"
    assert value(owner.ctx, "cxpulse_alerts_active", type="complaint_spike") == 1
    assert value(owner.ctx, "cxpulse_anomaly_score", detector="complaint_spike", series=SERIES) > 0.9


def test_alerts_go_out_as_cloudevents_from_the_stream_of_their_series():
    ctx = Context.create(Settings(source_id="urn:shop:eu", partitions=1), Metrics(CollectorRegistry()))
    owner = Owner(ctx=ctx)
    alert = AlertEvent("firing", alert_id("s", T0), "s", {}, "metric_anomaly", T0, T0, T0 + 60, 9.0, 1.0, 0.99,
                       "critical", "s: 9/min vs ~1.0/min expected")  # fmt: skip
    for stream, step in (("clickstream", K0), ("deliveries", int(T0 // 3600))):
        owner.handler._watcher(owner.handler._part(0), stream).advance_steps = lambda upto: [alert]
        out = owner.handler.handle(progress_record(0, step, stream=stream), None, 0)
        (record,) = out.records
        event = ce.decode(record.value)
        assert (record.topic, record.key, record.headers) == (Topic.ALERTS, alert.alert_id.encode(), ce.KAFKA_HEADERS)
        assert (event["id"], event["source"]) == (alert_event_id(alert.alert_id, "firing"), f"urn:shop:eu/{stream}")
    assert value(ctx, "cxpulse_alerts_total", type="metric_anomaly") == 2


def test_a_malformed_series_record_is_dead_lettered():
    owner = Owner()
    out = owner.handler.handle(b"{not json", b"k", 0, 0)
    (record,) = out.records
    assert record.topic == Topic.DEADLETTER
    assert value(owner.ctx, "cxpulse_events_rejected_total", stream="series", reason="invalid_json") == 1
    mismatch = orjson.loads(progress_record(0, K0))
    mismatch["step_s"] = 30.0  # a fleet with different step settings: refused, not mixed in
    (record,) = owner.handler.handle(orjson.dumps(mismatch), None, 0, 1).records
    assert record.topic == Topic.DEADLETTER


# -- checkpoints ---------------------------------------------------------------------------


def test_owner_checkpoint_restores_learned_state_and_skips_applied_records():
    first = Owner(partitions=2)
    first.send(*steps_of(K0, K0 + 64, 3.0))  # warmed up: past the 60 warm-up steps
    data = first.handler.snapshot(0)
    assert data is not None and first.handler.snapshot(0) is None  # unchanged since: nothing to write
    print(f"owner checkpoint: {len(data)} bytes for {len(first.watcher())} series")
    state = pickle.loads(data)
    assert state["version"] == 1 and state["offset"] == first.offset - 1
    second = Owner(partitions=2)
    second.handler.restore(0, data)
    second.offset = first.offset - 3  # the committed offset is behind: re-read, but not re-applied
    assert second.send(b"{not json", b"{not json", b"{not json") == []
    assert value(second.ctx, "cxpulse_events_rejected_total", stream="series", reason="invalid_json") is None
    assert second.watcher()._series[SERIES].steps == first.watcher()._series[SERIES].steps == 65
    # Both continue identically: the same spike fires the same alert on each, with no new warm-up.
    spike = steps_of(K0 + 65, K0 + 69, 40.0)
    a, b = first.send(*spike), second.send(*spike)
    assert a and [x["id"] for x in a] == [x["id"] for x in b]
    # The learned baseline came back (a fresh series would start from its first step's value).
    assert second.watcher()._series[SERIES].baseline == pytest.approx(first.watcher()._series[SERIES].baseline)
    assert 2.0 < second.watcher()._series[SERIES].baseline < 4.0


def test_partials_checkpoint_skips_reprocessed_messages_and_resends_the_last_emission():
    ctx = make_ctx(partitions=1)
    h = ContactsHandler(ctx)
    h.handle(complaint(1, 5), partition=0, offset=0)
    h.handle(complaint(2, 75), partition=0, offset=1)  # emits K0; K0 + 1 has one complaint
    h.handle(complaint(3, 80), partition=0, offset=2)
    data = h.monitor.snapshot(0)
    assert data is not None and h.monitor.snapshot(0) is None
    restored = ContactsHandler(make_ctx(partitions=1))
    restored.monitor.restore(0, data)
    # The first message after the restore carries the last emission again (flagged as a resend).
    out = series_records(restored.handle(complaint(2, 75), partition=0, offset=1))  # re-processed
    resent = partials(out)
    assert [(d["step"], d["sum"], d.get("resend")) for d in resent] == [(K0, 1.0, True)]
    assert {m["through"] for _, m in progress(out)} == {K0}
    restored.handle(complaint(3, 80), partition=0, offset=2)  # re-processed: not counted twice
    out = series_records(restored.handle(complaint(4, 150), partition=0, offset=3))
    (partial,) = partials(out)
    assert (partial["step"], partial["sum"], partial.get("resend")) == (K0 + 1, 2.0, None)


# -- the fleet -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def one_and_two_workers():
    return run_world(GOLDEN_WORLD, partitions=4), run_world(GOLDEN_WORLD, partitions=4, workers=2)


def test_two_workers_give_the_alerts_of_one(one_and_two_workers):
    one, two = one_and_two_workers
    assert one.alert_ids and two.alert_ids == one.alert_ids
    # One incident, one alert: one firing per episode, whatever the number of workers.
    for result in (one, two):
        firing = [a for a in result.alerts if a[2] == "firing"]
        assert len(firing) == len({(a[0], a[1]) for a in firing}), firing
        # The world's storms (its complaint spike is too small at its density to alert, as before).
        assert {a[0] for a in firing} >= {'rage_clicks{page="/checkout"}', 'client_errors{page="/cart"}'}


def test_a_crash_restored_from_checkpoints_gives_the_same_alert_ids():
    """One worker on 2 partitions checkpoints, runs on, crashes; a new one restores and re-reads."""
    messages = world_messages(GOLDEN_WORLD, partitions=2)
    expected = Fleet(partitions=2)
    for message in messages:
        expected.feed(message)
    assert expected.result.alert_ids
    assert _crash(messages, restore=True).alert_ids == expected.result.alert_ids
    # Without the checkpoints the error rate is watched from scratch and the storm goes unseen.
    assert _crash(messages, restore=False).alert_ids < expected.result.alert_ids


def _crash(messages: list, restore: bool):
    # The checkpoint (and the commit) half an hour before the error storm (40 h), the crash about 50
    # event-time minutes later, in the storm: a worker without the checkpoint would watch the error
    # rate from scratch again (60 warm-up steps) and miss the storm's alert.
    checkpoint_at = _index_at(messages, GOLDEN_WORLD.start + 39.5 * 3600)
    crash_at = checkpoint_at + 500
    fleet = Fleet(partitions=2)
    table: dict[str, bytes] = {}
    old = fleet.workers[0]
    for i, message in enumerate(messages[:crash_at]):
        if i == checkpoint_at:
            old.checkpoints.table = table
            assert old.checkpoints.save() >= 4  # three input streams and the owner, per partition
            committed = dict(fleet.offsets)  # the offsets committed with it: the next to read
            series_committed = {p: len(log) for p, log in fleet.series_log.items()}
        fleet.feed(message)
    # At-least-once: the new worker resumes from offsets *before* the checkpoint (200 earlier).
    restart = {position: max(0, offset - 200) for position, offset in committed.items()}
    new = Worker(fleet.settings, range(2), stores=old.stores, checkpoint_table=table if restore else {})
    new.checkpoints.restore()
    fleet.workers = [new]
    for p, end in series_committed.items():
        for offset in range(max(0, end - 50), len(fleet.series_log[p])):
            fleet.deliver_series(p, offset)
    seen: dict[tuple[str, int], int] = {}
    for message in messages:
        position = (message.stream, message.partition)
        offset = seen.get(position, 0)
        seen[position] = offset + 1
        if offset >= restart.get(position, 0):
            fleet.feed(message, offset)
    return fleet.result


def _index_at(messages, ts: float) -> int:
    """The index of the first message whose first event is at or after ``ts``."""
    for i, message in enumerate(messages):
        event = orjson.loads(message.value)
        first = event[0] if isinstance(event, list) else event
        if datetime.fromisoformat(first["ts"]).timestamp() >= ts:
            return i
    raise AssertionError("the world ends before ts")
