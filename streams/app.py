"""The one ``faust.App`` of cxpulse, its topics, and the worker's web page ``/metrics``.

Input topics are read as raw bytes: Faust's own decoding would crash the stream on a bad
message and has no dead-letter queue, so :mod:`streams.pipeline` validates and routes
failures itself, and :mod:`streams.sender` makes sure a failure to send never crashes an agent
(Faust would restart it past the message: the message would be lost). The producer's and the
consumer's size limits come from :mod:`streams.size_budget`. Handlers hold per-partition state
in memory; anything that must survive a restart or a rebalance lives in Faust tables with
changelog topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import signal
import ssl
from dataclasses import dataclass, field
from typing import Any, Protocol

import faust
import orjson
from faust.exceptions import NotReady
from faust.sensors.prometheus import FaustMetrics
from faust.types import TP
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, Histogram, generate_latest

from streams.checkpoints import Checkpoints, save_before_commit
from streams.clickstream import ClickstreamHandler
from streams.contacts import ContactsHandler
from streams.customers import TICK, CustomersHandler
from streams.deadletters import Source
from streams.deliveries import DeliveriesHandler
from streams.event_time import Watermark
from streams.faust_monitor import ScrapeTimeMonitor
from streams.faust_patches import apply as patch_faust
from streams.faust_patches import committed_offset
from streams.metrics import Metrics
from streams.pipeline import Context, Outputs, Record, StreamHandler
from streams.rebalance import Ownership, group_instance_id, heartbeat_interval, recover_callbacks
from streams.sender import OutputSender
from streams.series import SeriesOwnerHandler
from streams.settings import Settings, get_settings
from streams.size_budget import SizeBudget
from streams.tables import Table
from streams.topics import CHECKPOINTS_TABLE, INPUT_TOPICS, Store, Topic, topic_names

logger = logging.getLogger(__name__)

LAG_INTERVAL_S = 5.0
KAFKA_PROBE_INTERVAL_S = 5.0
KAFKA_PROBE_TIMEOUT_S = 5.0


def broker_credentials(settings: Settings) -> Any:
    if not settings.security_protocol.startswith("SASL") and settings.security_protocol != "SSL":
        return None
    context = ssl.create_default_context(cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None)
    if settings.security_protocol == "SSL":
        return faust.SSLCredentials(context)
    password = settings.sasl_password.get_secret_value() if settings.sasl_password else None
    return faust.SASLCredentials(
        username=settings.sasl_username,
        password=password,
        mechanism=settings.sasl_mechanism or "PLAIN",
        ssl_context=context if settings.security_protocol == "SASL_SSL" else None,
    )


@dataclass
class Pipeline:
    """The app with everything hanging off it, so tests can reach the handlers."""

    app: faust.App
    settings: Settings
    metrics: Metrics
    handlers: dict[Topic, Handler] = field(default_factory=dict)
    topics: dict[Topic, Any] = field(default_factory=dict)
    positions: dict[Any, int] = field(default_factory=dict)  # tp -> last processed offset
    #: Agents awaiting the sends of a message's outputs (timers add nothing behind their back).
    sending: set[Topic] = field(default_factory=set)
    sender: OutputSender = field(init=False)

    def __post_init__(self) -> None:
        self.sender = OutputSender(self.produce, self.metrics, SizeBudget.of(self.settings).output_record_bytes)

    async def produce(self, record: Record) -> Any:
        """Send one record; returns its delivery future (Faust's ``send`` does not wait for the ack)."""
        return await self.topics[record.topic].send(
            key=record.key, value=record.value, headers=record.headers, partition=record.partition
        )


class _SecondsHistogram:
    """Faust observes its event runtime in milliseconds; Prometheus wants base units."""

    def __init__(self, histogram: Histogram) -> None:
        self.histogram = histogram

    def observe(self, milliseconds: float) -> None:
        self.histogram.observe(milliseconds / 1000.0)


def _expose_metrics(app: faust.App, metrics: Metrics) -> None:
    """Faust's own sensor metrics (prefix ``faust_``) and ours, on one ``/metrics`` page."""
    registry = metrics.registry
    faust_metrics = FaustMetrics.create(registry, "faust")
    # The one Faust metric with a unit in its name says "_ms": re-export it in seconds.
    registry.unregister(faust_metrics.events_runtime_latency)
    runtime = Histogram(
        "faust_events_runtime_seconds",
        "Faust event processing time in seconds.",
        buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        registry=registry,
    )
    faust_metrics = faust_metrics._replace(events_runtime_latency=_SecondsHistogram(runtime))  # type: ignore[arg-type]
    monitor = ScrapeTimeMonitor(metrics=faust_metrics)
    app.monitor = monitor

    @app.page("/metrics")
    async def metrics_page(self: View, request: Request) -> Response:
        monitor.flush()
        # CONTENT_TYPE_LATEST carries its own charset; aiohttp wants it as a raw header.
        return self.bytes(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


#: Messages Faust buffers per stream before the consumer waits (Faust's default 4096). Measured
#: on the bench (README, Performance): a larger buffer lets one fetch feed the agents without the
#: consumer blocking and waking per message; 16 Ki small JSON messages are a few MiB per stream.
STREAM_BUFFER_MAXSIZE = 16384


def use_uvloop() -> None:
    """Run the worker on uvloop (set before Faust creates its loop)."""
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def faust_worker(app: faust.App, loglevel: str) -> Any:
    """Faust's ``Worker`` for ``app``, without its terminal spinner.

    Faust draws a progress spinner on start-up when the log level is WARN or above, and for it
    sets the *root* logger to DEBUG with a handler per record: every ``log.debug`` of aiokafka and
    Faust (several per message sent or fetched) then builds a log record that is thrown away,
    7.7% of a worker's samples in a py-spy profile at ``--loglevel warning``, and the spinner
    writes terminal escape codes into a service's log. A worker has no terminal to spin in.
    """
    from faust.worker import Worker

    worker = Worker(app, loglevel=loglevel)
    worker.spinner = None
    return worker


def faust_tuning() -> dict[str, Any]:
    """Faust settings chosen for throughput, shared with the bench's no-op Faust worker
    (``bench/faust_floor.py``) so that the two measure the same Faust."""
    return {"stream_buffer_maxsize": STREAM_BUFFER_MAXSIZE}


def create_app(settings: Settings | None = None, metrics: Metrics | None = None) -> Pipeline:
    settings = settings or get_settings()
    patch_faust()
    metrics = metrics or Metrics()
    datadir = settings.data_dir / "worker" / settings.app_id
    datadir.mkdir(parents=True, exist_ok=True)
    brokers = [f"kafka://{host.strip()}" for host in settings.bootstrap_servers.split(",")]
    budget = SizeBudget.of(settings)
    app = faust.App(
        settings.app_id,
        broker=brokers,
        broker_credentials=broker_credentials(settings),
        store=settings.store,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        datadir=str(datadir),
        producer_acks=-1,
        # The size budget: the producer takes any dead letter of an input the broker accepted;
        # the consumer fetches the largest record of any topic in one go.
        producer_max_request_size=budget.output_record_bytes,
        consumer_max_fetch_size=budget.output_record_bytes,
        consumer_auto_offset_reset="earliest",
        # Rebalances and restarts: see streams/rebalance.py and the README.
        Table=Table,
        consumer_group_instance_id=group_instance_id(settings.instance_id, settings.web_port),
        broker_session_timeout=settings.broker_session_timeout_seconds,
        broker_heartbeat_interval=heartbeat_interval(settings.broker_session_timeout_seconds),
        # No standby copies: the memory store re-reads whole changelogs on every assignment anyway,
        # and standby keys would show in the tables the detectors iterate (and expire).
        table_standby_replicas=0,
        **faust_tuning(),
    )
    _expose_metrics(app, metrics)
    pipeline = Pipeline(app, settings, metrics)
    for topic, name in topic_names(settings).items():
        pipeline.topics[topic] = app.topic(
            name, key_serializer="raw", value_serializer="raw", partitions=settings.partitions
        )
    # Durable per-key state, co-partitioned with the topic whose key it shares.
    tables = {
        store: app.Table(store.value, default=None, partitions=settings.partitions,
                         extra_topic_configs=changelog_topic_config(settings))
        for store in Store
    }  # fmt: skip
    # Per-partition state (partials, learned models): saved before every commit, restored after
    # every recovery (streams/checkpoints.py). Values are the states' own bytes.
    checkpoint_table = app.Table(
        CHECKPOINTS_TABLE, default=None, partitions=settings.partitions, value_type=bytes,
        extra_topic_configs=changelog_topic_config(settings),
    )  # fmt: skip
    checkpoints = Checkpoints(checkpoint_table)
    app.sensors.add(save_before_commit(checkpoints))
    ctx = Context.create(settings, metrics, stores=tables, checkpoints=checkpoints)
    # SeriesOwnerHandler: the agent on cx.series that runs the series detectors (streams/series.py).
    inputs = (ClickstreamHandler(ctx), ContactsHandler(ctx), DeliveriesHandler(ctx))
    for handler in (*inputs, CustomersHandler(ctx), SeriesOwnerHandler(ctx)):
        pipeline.handlers[handler.source] = handler
        handler.event_clock.backlog = backlog_probe(app, topic_names(settings)[handler.source], pipeline.positions)
        _register_agent(pipeline, handler)
    _register_rebalance_hooks(pipeline, tables, checkpoint_table, checkpoints)
    _register_lag_timer(pipeline)
    _register_kafka_probe(pipeline)
    _register_signals_tick(pipeline)
    _register_state_dump(pipeline)
    return pipeline


def changelog_topic_config(settings: Settings) -> dict[str, str]:
    """Topic configs of the changelogs Faust creates (on top of ``cleanup.policy=compact``).

    Every write of a table key is a changelog record, and the memory store re-reads its changelog
    on every start and assignment. Kafka compacts only closed segments, and by default a segment
    closes after 7 days or 1 GiB: a busy worker would recover every update of the week. Closing a
    segment every ``CXPULSE_CHANGELOG_SEGMENT_SECONDS`` lets the cleaner keep about one record per
    live key plus the updates of the last segments. Applies when Faust creates the topic.
    """
    return {"segment.ms": str(int(settings.changelog_segment_seconds * 1000))}


class Handler(Protocol):
    source: Topic
    event_clock: Watermark

    @property
    def stores(self) -> tuple[Store, ...]:
        """The tables its detectors index."""

    def handle(
        self, raw: bytes, key: bytes | None = ..., partition: int | None = ..., offset: int | None = ...
    ) -> Outputs: ...

    def recovered(self) -> None:
        """Rebuild the detectors' indexes from the tables (after every recovery)."""


def _register_agent(pipeline: Pipeline, handler: Handler) -> None:
    topic = pipeline.topics[handler.source]
    positions = pipeline.positions
    sender = pipeline.sender
    sending = pipeline.sending
    stream_name = handler.source.value
    source_topic = topic.get_topic_name()
    # Exported at 0 from the start, so the first processing error is an increase Prometheus sees.
    pipeline.metrics.events_rejected.labels(stream_name, "processing_error")

    async def process(stream: Any) -> None:
        # Nothing in this loop may raise: Faust would restart the agent past the message.
        async for event in stream.events():
            message = event.message
            key, value, partition, offset = message.key, message.value, message.partition, message.offset
            positions[message.tp] = offset
            try:
                out = handler.handle(value, key, partition, offset)
            except Exception as exc:  # a handler without its own safety net (or a bug in that)
                pipeline.app.log.exception("%s message %s@%s failed", stream_name, partition, offset)
                source = Source(stream_name, source_topic, key, value or b"", partition, offset)
                await sender.dead_letter_input(source, exc, "handling the message")
                continue
            if out.records:
                sending.add(handler.source)
                try:
                    await sender.send(out, Source(stream_name, source_topic, key, value or b"", partition, offset))
                finally:
                    sending.discard(handler.source)

    pipeline.app.agent(topic, name=f"cxpulse.{handler.source.value}")(process)


def _register_rebalance_hooks(
    pipeline: Pipeline, tables: dict[Store, Any], checkpoint_table: Any, checkpoints: Checkpoints
) -> None:
    """Given-away partitions leave the worker; indexes and checkpoints come back once tables are recovered."""
    handlers = list(pipeline.handlers.values())
    clocks = {pipeline.topics[h.source].get_topic_name(): h.event_clock for h in handlers}
    ownership = Ownership(clocks, pipeline.positions, pipeline.metrics)

    async def on_assigned(app: Any, assigned: set[Any], **kwargs: Any) -> None:
        ownership.assigned(assigned)
        checkpoints.assigned(assigned)
        logger.info(
            "assigned (generation %s): %s", app.consumer_generation_id,
            ", ".join(sorted(f"{tp.topic}/{tp.partition}" for tp in ownership.owned)) or "-",
        )  # fmt: skip

    # mode types receivers as taking a keyword ``signal``; Faust sends (app, assigned).
    pipeline.app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]
    for store, hooks in recover_callbacks(handlers).items():

        async def rebuild(hooks: list[Any] = hooks, store: Store = store) -> None:
            for hook in hooks:
                hook()
            logger.info("table %s recovered: %d keys", store.value, len(tables[store]))

        tables[store].on_recover(rebuild)

    async def restore_checkpoints() -> None:
        checkpoints.restore()

    checkpoint_table.on_recover(restore_checkpoints)


def unread(consumer: Any, positions: dict[Any, int], tp: Any) -> int | None:
    """Messages of ``tp`` this worker has not processed yet (highwater minus the next offset to
    process); None while the highwater is unknown (no fetch answer for ``tp`` yet)."""
    highwater = consumer.highwater(tp)
    if highwater is None or highwater < 0:
        return None
    position = positions.get(tp)
    # Nothing processed since the assignment: it resumes from the committed offset.
    done = position + 1 if position is not None else committed_offset(consumer, tp) or 0
    return max(0, highwater - done)


def backlog_probe(app: faust.App, topic: str, positions: dict[Any, int]) -> Any:
    """``Watermark.backlog`` of the stream on ``topic``: True while a partition has unread messages.

    A partition the fetcher leaves waiting (catch-up, a rebalance, a slow broker) delivers nothing
    for a while although it is far from done; without this it would count as idle after
    ``CXPULSE_IDLE_PARTITION_SECONDS`` of wall time and stop holding the watermark back, so the
    partitions ahead would close windows and judge orders before its events are read. An unknown
    highwater counts as backlog: nothing is known to be done yet.
    """

    def backlog(partition: int | None) -> bool:
        if partition is None:
            return False
        try:
            remaining = unread(app.consumer, positions, TP(topic, partition))
        except Exception as exc:  # a probe must never fail the message being processed
            logger.debug("backlog of %s/%s unknown: %r", topic, partition, exc)
            return False
        return remaining is None or remaining > 0

    return backlog


def _register_lag_timer(pipeline: Pipeline) -> None:
    metrics = pipeline.metrics

    async def report_lag() -> None:
        consumer = pipeline.app.consumer
        assigned = consumer.assignment()
        input_names = {pipeline.topics[topic].get_topic_name() for topic in (*INPUT_TOPICS, Topic.SIGNALS)}
        counts: dict[str, int] = dict.fromkeys(input_names, 0)
        for tp in assigned:
            if tp.topic not in input_names:
                continue
            counts[tp.topic] += 1
            lag = unread(consumer, pipeline.positions, tp)
            if lag is not None:
                metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)
        for topic, count in counts.items():
            metrics.assigned_partitions.labels(topic).set(count)

    pipeline.app.timer(LAG_INTERVAL_S, name="cxpulse.consumer_lag")(report_lag)


async def kafka_reachable(app: faust.App, timeout: float = KAFKA_PROBE_TIMEOUT_S) -> bool:
    """True when the worker's producer gets a metadata answer from any broker within ``timeout``.

    aiokafka retries on its own while the cluster is away (the worker resumes by itself) and
    only logs; this probe is what makes the outage visible on ``/metrics``. A refused connection
    fails at once; a silent network is caught by ``timeout``.
    """
    try:
        client = app.producer._ensure_producer().client  # type: ignore[attr-defined]
        return bool(await asyncio.wait_for(client.force_metadata_update(), timeout))
    except (TimeoutError, NotReady):  # NotReady: the producer has not started yet
        return False
    except Exception as exc:  # the probe must never take the worker down
        logger.warning("Kafka probe failed: %r", exc)
        return False


def _register_kafka_probe(pipeline: Pipeline) -> None:
    """``cxpulse_kafka_connected``: once at start-up, then every ``KAFKA_PROBE_INTERVAL_S``."""
    connected = pipeline.metrics.kafka_connected

    async def probe_kafka() -> None:
        connected.set(1.0 if await kafka_reachable(pipeline.app) else 0.0)

    pipeline.app.task(probe_kafka)
    pipeline.app.timer(KAFKA_PROBE_INTERVAL_S, name="cxpulse.kafka_probe")(probe_kafka)


def consumer_state(app: faust.App) -> dict[str, Any]:
    """What decides whether the worker fetches: assignment, paused partitions, flow, positions."""
    consumer: Any = app.consumer
    state: dict[str, Any] = {
        "generation": app.consumer_generation_id,
        "assigned": len(consumer.assignment()),
        "paused_faust": sorted(f"{tp.topic}/{tp.partition}" for tp in consumer._paused_partitions),
        "flow_active": consumer.flow_active,
        "flow_control_active": app.flow_control.is_active(),
        "recovery_completed": app.tables.recovery.completed.is_set(),  # type: ignore[attr-defined]
        "fetcher": app._fetcher.state,
    }
    with contextlib.suppress(Exception):  # aiokafka internals, for the eyes only
        kafka = consumer._thread._ensure_consumer()
        state["paused_aiokafka"] = sorted(f"{tp.topic}/{tp.partition}" for tp in kafka.paused())
        assignment = kafka._subscription.subscription.assignment
        state["positions"] = {
            f"{tp.topic}/{tp.partition}": assignment.state_value(tp).position
            for tp in kafka.assignment() if not tp.topic.endswith("-changelog")
        }  # fmt: skip
    return state


def _register_state_dump(pipeline: Pipeline) -> None:
    """``kill -USR2 <worker>`` logs the consumer's state and every asyncio task's stack: what a
    worker that stopped processing is waiting for (diagnostics; nothing changes)."""

    def dump() -> None:
        logger.warning("consumer state: %r", consumer_state(pipeline.app))
        for task in asyncio.all_tasks():
            buffer = io.StringIO()
            task.print_stack(limit=6, file=buffer)
            logger.warning("task %s:\n%s", task.get_name(), buffer.getvalue())

    async def install() -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR2, dump)

    pipeline.app.task(install)


SIGNALS_TICK_INTERVAL_S = 1.0


def _register_signals_tick(pipeline: Pipeline) -> None:
    """Every second: wake stalled ``cx.signals`` partitions, report quiet input partitions.

    The customers agent leaves out an input partition that never reported once
    ``CXPULSE_IDLE_PARTITION_SECONDS`` have passed, but it checks when a record arrives; after a
    backlog drained (and with one stream silent) none does. A ``tick`` record, sent to that
    partition only, lets the agent apply the rule in the partition's own stream context (so its
    table writes go to the right changelog partition). Nothing is sent while nothing is stalled.

    Input partitions report their progress at most every ``CXPULSE_SIGNALS_PROGRESS_SECONDS`` of
    event time and 0.1 s of wall time; a partition quiet for a second also reports the newest
    clock those limits held back (:meth:`streams.pipeline.SignalsProgress.flush`).
    """
    handler = pipeline.handlers[Topic.SIGNALS]
    if not isinstance(handler, CustomersHandler):
        return
    tick = orjson.dumps({"type": TICK})
    inputs = [(topic, h) for topic, h in pipeline.handlers.items() if isinstance(h, StreamHandler)]

    async def wake_stalled() -> None:
        out = Outputs()
        for partition in handler.stalled():
            out.records.append(Record(Topic.SIGNALS, b"tick", tick, partition=partition))
        # The newest clock of each quiet input partition, which the spacing of reports held
        # back: without it the last signals before a pause would wait for the next traffic,
        # and how many of them did would depend on where each worker's last report fell.
        # Not while that agent sends a message's outputs: a report must follow its signals.
        for topic, stream_handler in inputs:
            if topic not in pipeline.sending:
                stream_handler.signals_progress.flush(out)
        if out.records:
            name = pipeline.topics[Topic.SIGNALS].get_topic_name()
            await pipeline.sender.send(out, Source("signals", name, None, b"", None, None))

    pipeline.app.timer(SIGNALS_TICK_INTERVAL_S, name="cxpulse.signals_tick")(wake_stalled)
