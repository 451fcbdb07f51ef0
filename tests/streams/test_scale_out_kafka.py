"""Scaling out the Kafka way: a second worker process joins the consumer group mid-stream.

The first worker owns every partition and has built order state (the changelogged ``orders``
table) when the second joins; after the rebalance each owns a share, the newcomer recovers the
tables of the partitions it took over, and together they process every message at least once.
At-least-once means a message may be processed twice around the rebalance; a notification may
then be *sent* twice, but always with the same id and content, so downstream dedup by id leaves
exactly one per cause.
"""

from __future__ import annotations

from collections import defaultdict

import orjson
import pytest

from deploy.local.processes import free_port
from deploy.simulator.simulation import Incident, SimulationConfig, iter_encoded
from tests.detectors.test_delivery_quality import INCIDENT
from tests.kafka_harness import consume_all, isolated_settings, produce, sample, start_worker, wait_signals_drained

pytestmark = [
    pytest.mark.kafka,
    # Known bug, reproduced here on purpose: after the rebalance the worker that was there first
    # stops processing the partitions it kept whose agents write Faust tables (contacts,
    # deliveries, signals); clickstream goes on. See the README's "Known issues". Runs and
    # asserts every time, so the day it passes shows up as XPASS.
    pytest.mark.xfail(reason="Faust worker stalls on table-backed partitions after a rebalance under load",
                      strict=False),
]

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
