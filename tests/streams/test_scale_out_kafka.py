"""Scaling out and in the Kafka way: worker processes join and leave the consumer group mid-stream.

The first test is the reported "join stall": the first worker owns every partition and has built
order state (the changelogged ``orders`` table) when a second joins under load. It looked stalled
because each worker kept reporting the consumer lag it last saw on partitions it had given away
(the gauge children were never removed); and every rebalance re-processed everything since the
last periodic commit (Faust dropped the acked offsets of revoked partitions before committing
them, see ``streams/faust_patches.py``). After the rebalance each owns a share, the newcomer
recovers the tables of the partitions it took over, and together they process every message at
least once. A message processed twice around a rebalance may make a notification be *sent*
twice, but always with the same id and content, so downstream dedup by id leaves one per cause.

The second goes 1 -> 3 -> 1 workers under live traffic and compares the notifications with an
undisturbed run of the same traffic. On a loaded machine it once lost table state across the
join: Faust flushed its producer buffer for at most 0.1 s without progress before committing, so
changelog writes of committed messages were still queued when the newcomer recovered the tables
(a detractor follow-up without its contact's reason, a lost delivery-failed and a lost outreach
notification). ``streams/faust_patches.py`` makes that flush complete.
"""

from __future__ import annotations

import time
from collections import defaultdict

import orjson
import pytest

from deploy.local.processes import free_port
from deploy.simulator.simulation import Incident, SimulationConfig, iter_encoded
from tests.detectors.test_delivery_quality import INCIDENT
from tests.kafka_harness import (
    LiveTraffic,
    OutputDiff,
    cloudevents_by_id,
    consume_all,
    isolated_settings,
    produce,
    sample,
    start_worker,
    wait_signals_drained,
)
from tests.streams.scenario import EXACT_TYPES, notification_traffic, reference_settings, wait_everything_processed

pytestmark = pytest.mark.kafka

DAY = 86400.0
PARTITIONS = 4


def test_a_joining_worker_takes_over_partitions_and_ids_stay_one_per_cause(kafka_broker, tmp_path):
    settings = isolated_settings(kafka_broker.bootstrap, tmp_path / "var", partitions=PARTITIONS)
    config = SimulationConfig(
        seed=5, sim_seconds=4 * DAY, events_per_sim_second=0.05, incidents=(Incident.parse(INCIDENT),),
        mix={"clickstream": 0.0, "contacts": 0.15, "deliveries": 0.85},
    )  # fmt: skip
    topics = {"clickstream": settings.topic_clickstream, "contacts": settings.topic_contacts,
              "deliveries": settings.topic_deliveries}  # fmt: skip
    messages = [(topics[stream], key, value) for stream, key, value in iter_encoded(config, batch_size=1)]
    expected: dict[str, int] = defaultdict(int)
    for topic, _, _ in messages:
        expected[topic.rsplit(".", 1)[-1]] += 1
    half = len(messages) // 2
    inputs = list(topics.values())
    workers = [start_worker(settings, tmp_path / "logs")]
    try:
        produce(settings, messages[:half])
        joining = settings.model_copy(update={"web_port": free_port()})
        workers.append(start_worker(joining, tmp_path / "logs", wait_assigned=False))
        produce(settings, messages[half:])

        def settled(_: dict) -> bool:
            scraped = [w.scrape() for w in workers]
            owned = [sum(sample(m, "cxpulse_assigned_partitions", topic=t) for t in inputs) for m in scraped]
            done = {
                s: sum(sample(m, "cxpulse_messages_total", stream=s) for m in scraped) for s in expected
            }  # fmt: skip
            return (sum(owned) == len(inputs) * PARTITIONS and all(owned)
                    and all(done[s] >= n for s, n in expected.items()))  # fmt: skip

        workers[0].wait_for(settled, timeout=240, what="both workers to own partitions and drain the input")
        wait_signals_drained(workers, timeout=120)
        newcomer = workers[1].scrape()
        assert sample(newcomer, "cxpulse_messages_total", stream="deliveries") > 0
    finally:
        for worker in workers:
            worker.stop()
    sent = [orjson.loads(r.value) for r in consume_all(settings, settings.topic_notifications, timeout=20)]
    by_id: dict[str, list[bytes]] = defaultdict(list)
    delayed_ids: dict[tuple[str, str], set[str]] = defaultdict(set)
    for event in sent:
        by_id[event["id"]].append(orjson.dumps(event, option=orjson.OPT_SORT_KEYS))
        if event["type"].endswith("delivery_delayed"):
            delayed_ids[event["subject"], event["data"]["promised_by"]].add(event["id"])
    assert delayed_ids, "no delivery_delayed notification at all"
    # a resend after the rebalance is the same event, byte for byte
    assert all(len(set(copies)) == 1 for copies in by_id.values())
    # one id per order and promise
    assert all(len(ids) == 1 for ids in delayed_ids.values())


def owned(samples: dict, settings) -> int:
    """Input partitions a worker owns, by its ``cxpulse_assigned_partitions``."""
    inputs = (settings.topic_clickstream, settings.topic_contacts, settings.topic_deliveries)
    return int(sum(sample(samples, "cxpulse_assigned_partitions", topic=t) for t in inputs))


def test_one_to_three_workers_and_back_under_live_traffic(kafka_broker, tmp_path):
    """1 -> 3 workers joining and 3 -> 1 leaving while traffic arrives: no stall, nothing lost.

    The leaving workers are static members (``CXPULSE_INSTANCE_ID``): they do not leave the group
    on shutdown, so their partitions move to the remaining worker after the session timeout.
    A reference worker in another consumer group processes the same traffic undisturbed.
    """
    settings = isolated_settings(kafka_broker.bootstrap, tmp_path / "var", partitions=PARTITIONS)
    undisturbed = reference_settings(settings, kafka_broker.bootstrap, tmp_path / "undisturbed")
    live = LiveTraffic(settings, notification_traffic(settings, days=3, seed=4), rate=150.0)
    logs = tmp_path / "logs"
    first = start_worker(settings, logs)
    reference = start_worker(undisturbed, logs)
    joiners: list = []
    try:
        live.start()
        started = time.monotonic()
        time.sleep(live.seconds * 0.2)
        joined_at = time.monotonic()
        joiners = [
            start_worker(settings.model_copy(update={"web_port": free_port()}), logs, wait_assigned=False)
            for _ in range(2)
        ]
        fleet = [first, *joiners]
        first.wait_for(lambda _: all(owned(w.scrape(), settings) > 0 for w in fleet), timeout=240,
                       what="three workers to share the partitions")  # fmt: skip
        join_s = time.monotonic() - joined_at
        time.sleep(max(0.0, started + live.seconds * 0.55 - time.monotonic()))
        processed = [sum(sample(w.scrape(), "cxpulse_messages_total", stream=s) for s in ("contacts", "deliveries"))
                     for w in joiners]  # fmt: skip
        left_at = time.monotonic()
        for worker in joiners:
            worker.stop()
        first.wait_for(lambda m: owned(m, settings) == 3 * PARTITIONS, timeout=240,
                       what="the remaining worker to own every partition")  # fmt: skip
        leave_s = time.monotonic() - left_at
        live.finish()
        wait_everything_processed([first, reference])
    finally:
        for worker in (first, *joiners, reference):
            worker.stop()
    notifications = OutputDiff(cloudevents_by_id(settings, settings.topic_notifications),
                               cloudevents_by_id(undisturbed, undisturbed.topic_notifications))  # fmt: skip
    print(f"\n1 -> 3: all three own partitions {join_s:.1f}s after the joiners started; 3 -> 1: the first "
          f"owns every partition {leave_s:.1f}s after they stopped; joiners processed {processed}")  # fmt: skip
    print(notifications.summary())
    assert all(n > 0 for n in processed), "a joining worker processed nothing"
    notifications.assert_same(EXACT_TYPES)
