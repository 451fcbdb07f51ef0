"""The ``cxpulse`` command line."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from streams.exceptions import BrokerAccessError
from streams.settings import PROJECT_ROOT, get_settings

cli = typer.Typer(help="cxpulse: real-time customer-experience monitoring on Kafka.", no_args_is_help=True)
kafka_cli = typer.Typer(help="The local Apache Kafka broker (KRaft, single node).", no_args_is_help=True)
topics_cli = typer.Typer(help="cxpulse topics.", no_args_is_help=True)
cli.add_typer(kafka_cli, name="kafka")
cli.add_typer(topics_cli, name="topics")
grafana_cli = typer.Typer(help="Grafana boards as code.", no_args_is_help=True)
cli.add_typer(grafana_cli, name="grafana")


def _broker():
    from deploy.local.kafka import KafkaBroker
    from deploy.local.settings import get_local_settings

    settings = get_local_settings()
    host, _, port = settings.bootstrap_servers.split(",")[0].rpartition(":")
    return KafkaBroker(
        settings.data_dir / "kafka",
        host=host or "127.0.0.1",
        port=int(port),
        controller_port=settings.kafka_controller_port,
    )


@kafka_cli.command("start")
def kafka_start() -> None:
    """Install (first time), format and start the broker; return once it answers."""
    broker = _broker()
    typer.echo(f"starting Kafka at {broker.bootstrap} (data in {broker.data_dir}) ...")
    broker.start()
    typer.echo(broker.status())


@kafka_cli.command("stop")
def kafka_stop() -> None:
    """Stop the broker cleanly (SIGKILL after 30 s)."""
    typer.echo("stopped" if _broker().stop() else "not running")


@kafka_cli.command("status")
def kafka_status() -> None:
    """Say whether the broker runs and where it listens."""
    typer.echo(_broker().status())


@topics_cli.command("create")
def topics_create() -> None:
    """Create every cxpulse topic with its partitions and configs (idempotent)."""
    from streams.topics import create_topics

    for name, outcome in create_topics(get_settings()).items():
        typer.echo(f"{name}: {outcome}")


@cli.command()
def worker(
    web_port: Annotated[int | None, typer.Option(help="Port of /metrics (default CXPULSE_WEB_PORT).")] = None,
    loglevel: Annotated[str, typer.Option(help="Log level.")] = "info",
    processes: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes in one consumer group on this host; process i serves /metrics on the web "
            "port + i (scrape them all). At most CXPULSE_PARTITIONS of them get work.",
        ),
    ] = 1,
) -> None:
    """Run a stream-processing worker (joins the consumer group; serves /metrics)."""
    if web_port is not None:
        os.environ["CXPULSE_WEB_PORT"] = str(web_port)
        get_settings.cache_clear()
    if processes > 1:
        from streams.processes import run_processes

        raise typer.Exit(run_processes(get_settings(), processes, loglevel))
    from streams.app import create_app, faust_worker, use_uvloop
    from streams.broker_access import check_worker_access

    use_uvloop()
    # Wrong credentials stop the worker with one clear line (and the orchestrator restarts it
    # with back-off, visibly) instead of Faust's "Unable to bootstrap" traceback.
    check_worker_access(get_settings())
    pipeline = create_app()
    faust_worker(pipeline.app, loglevel).execute_from_commandline()


@cli.command()
def replay(
    from_time: Annotated[
        str | None, typer.Option("--from", help="Reprocess records from this time (RFC 3339) on.")
    ] = None,
    from_beginning: Annotated[bool, typer.Option(help="Reprocess every retained record.")] = False,
    group: Annotated[
        str | None, typer.Option(help="New consumer group (default <CXPULSE_APP_ID>-replay-<UTC time>).")
    ] = None,
    web_port: Annotated[int | None, typer.Option(help="Port of /metrics (default CXPULSE_WEB_PORT).")] = None,
    loglevel: Annotated[str, typer.Option(help="Log level.")] = "info",
) -> None:
    """Reprocess history into a fresh consumer group: same ids as the live run (see streams/replay.py)."""
    from schemas.parsing import parse_timestamp
    from streams.app import create_app, faust_worker, use_uvloop
    from streams.broker_access import check_worker_access
    from streams.exceptions import ConfigurationError
    from streams.replay import default_group, prepare

    if (from_time is None) == (not from_beginning):
        raise typer.BadParameter("give exactly one of --from TIME and --from-beginning")
    settings = get_settings()
    if web_port is not None:
        settings = settings.model_copy(update={"web_port": web_port})
    check_worker_access(settings)
    name = group or default_group(settings)
    try:
        since = parse_timestamp(from_time) if from_time is not None else None
        replay_settings = prepare(settings, name, since)
    except (ValueError, ConfigurationError) as exc:
        typer.echo(f"cxpulse replay: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"replaying into consumer group {name} (signals topic {replay_settings.topic_signals})", err=True)
    use_uvloop()
    faust_worker(create_app(replay_settings).app, loglevel).execute_from_commandline()


@cli.command()
def simulate(
    rate: Annotated[float, typer.Option(help="Events per wall-clock second.")] = 200.0,
    duration: Annotated[float, typer.Option(help="Wall-clock seconds to run.")] = 60.0,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same traffic).")] = 1,
    speedup: Annotated[float, typer.Option(help="Event-time seconds per wall second.")] = 1.0,
    incident: Annotated[
        list[str] | None,
        typer.Option(
            help="Incident to inject (repeatable): NAME[:key=value,...], e.g. complaint_spike:reason=billing,at=2h."
        ),
    ] = None,
    truth: Annotated[Path | None, typer.Option(help="Write the ground truth (JSON) here.")] = None,
    batch_size: Annotated[int, typer.Option(help="Clickstream events per message (1 = no batching).")] = 5,
    start: Annotated[
        str | None, typer.Option(help="Event-time start: RFC 3339, 'now' (ends at now), or default 2024-01-01T00:00Z.")
    ] = None,
) -> None:
    """Produce realistic, seeded traffic on the three input topics."""
    from deploy.simulator.producer import run_simulation
    from deploy.simulator.simulation import SimulationConfig
    from streams.topics import client_config

    settings = get_settings()
    config = SimulationConfig.from_cli(
        rate=rate, duration=duration, seed=seed, speedup=speedup, incidents=incident or [],
        start=_start_time(start, duration * speedup),
    )  # fmt: skip
    stats = run_simulation(
        config,
        bootstrap_servers=settings.bootstrap_servers,
        topics=_input_topics(settings),
        speedup=speedup,
        rate=None,  # the config already averages --rate; a hard cap would clip the daily peaks
        batch_size=batch_size,
        truth_path=truth,
        producer_config=client_config(settings),
    )
    typer.echo(json.dumps(stats, indent=2, default=str))
    if stats["delivery_failures"] or stats["undelivered"]:
        raise typer.Exit(1)


def _start_time(start: str | None, span: float) -> float | None:
    if start is None:
        return None
    if start == "now":
        return time.time() - span
    from schemas.parsing import parse_timestamp

    return parse_timestamp(start)


def _input_topics(settings) -> dict[str, str]:
    from streams.topics import INPUT_TOPICS, topic_names

    names = topic_names(settings)
    return {topic.value: names[topic] for topic in INPUT_TOPICS}


@cli.command()
def nab(
    data: Annotated[Path, typer.Option(help="NAB folder with data/ and labels/.")] = PROJECT_ROOT.parent
    / "shared"
    / "nab",
    out: Annotated[Path, typer.Option(help="Where to write <category>/<file>.csv results.")] = Path("var/nab"),
) -> None:
    """Run the metric anomaly detector over the NAB corpus and print its scores."""
    from detectors.nab import main as nab_main

    nab_main(data, out)


@cli.command()
def settings() -> None:
    """Print the settings in force, the worker's and the local tooling's (secrets masked)."""
    from deploy.local.settings import get_local_settings

    for name, value in get_local_settings().model_dump().items():
        typer.echo(f"CXPULSE_{name.upper()}={'**********' if 'password' in name and value else value}")


@cli.command()
def tail(
    what: Annotated[str, typer.Argument(help="notifications | alerts | deadletter")],
    from_beginning: Annotated[bool, typer.Option(help="Start at the oldest record.")] = False,
    limit: Annotated[int, typer.Option(help="Stop after this many records (0 = never).")] = 0,
) -> None:
    """Print decoded output events as they arrive."""
    from deploy.local.tail import tail_topic

    tail_topic(get_settings(), what, from_beginning=from_beginning, limit=limit)


@cli.command()
def demo(
    rate: Annotated[float, typer.Option(help="Simulated events per second.")] = 300.0,
    speedup: Annotated[float, typer.Option(help="Event-time seconds per wall second.")] = 60.0,
    processes: Annotated[int, typer.Option(min=1, help="Worker processes (cxpulse worker --processes).")] = 1,
) -> None:
    """Kafka + topics + worker + Prometheus + Alertmanager + simulator; Ctrl-C stops all."""
    from deploy.local.demo import run_demo
    from deploy.local.settings import get_local_settings

    run_demo(get_local_settings(), rate=rate, speedup=speedup, processes=processes)


@grafana_cli.command("generate")
def grafana_generate(
    out: Annotated[Path | None, typer.Option(help="Folder for the JSON (default grafana/dashboards).")] = None,
) -> None:
    """Regenerate the dashboards' JSON from the boards in grafana/boards/."""
    from grafana.generate import DASHBOARDS_DIR
    from grafana.generate import main as generate

    for path in generate(out or DASHBOARDS_DIR):
        typer.echo(str(path))


@grafana_cli.command("push")
def grafana_push(
    url: Annotated[str, typer.Option(help="Grafana base URL, e.g. http://grafana:3000.")],
    token: Annotated[str, typer.Option(help="Service-account token (Editor or Admin).", envvar="GRAFANA_TOKEN")],
    prometheus_url: Annotated[
        str | None, typer.Option(help="Also create/update the cxpulse Prometheus datasource with this URL.")
    ] = None,
) -> None:
    """Upload the boards (and optionally the datasource) to an existing Grafana."""
    from grafana.generate import DASHBOARDS_DIR
    from grafana.push import push

    result = push(url, token, DASHBOARDS_DIR, prometheus_url=prometheus_url)
    typer.echo(json.dumps(result, indent=2, default=str))


def main() -> None:
    # Ctrl-C in a child must not leave a traceback wall; Faust handles its own signals.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        cli()
    except BrokerAccessError as exc:
        # A settings problem, not a bug: the message says what to fix; a traceback would bury it.
        print(f"cxpulse: {exc}", file=sys.stderr, flush=True)
        sys.exit(os.EX_CONFIG)


if __name__ == "__main__":
    main()
