"""``cxpulse demo``: the whole pipeline on one machine, on live simulated traffic.

Starts (or reuses) the local Kafka broker, creates the topics, starts a worker, Alertmanager
(paging a small console receiver), Prometheus scraping the worker, and the simulator with
incidents injected a few minutes apart; prints where to look. Ctrl-C stops everything this
command started, in reverse order, and leaves no process behind.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

from deploy.local.kafka import KafkaBroker
from deploy.local.processes import port_open
from deploy.local.settings import LocalSettings
from streams.settings import PROJECT_ROOT
from streams.topics import create_topics

#: Incidents at event-time offsets (hours), once the detectors have warmed up.
DEMO_INCIDENTS = (
    # Event time runs 60x faster than the clock, so an incident must last hours of event time
    # to outlast the alert rules' `for:` durations (minutes of wall time).
    "carrier_delay:at=2h,duration=8h",
    "complaint_spike:reason=delivery,at=3h,duration=5h,factor=5",
    "rage_click_storm:page=/checkout,at=9h,duration=5h",
    "error_storm:page=/cart,at=15h,duration=5h",
)
PAGER_PORT = 9095


class _PagerHandler(BaseHTTPRequestHandler):
    """Alertmanager's webhooks land here and are printed: what on-call would be paged with."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        receiver = self.path.strip("/") or body.get("receiver", "?")
        for alert in body.get("alerts", []):
            labels, notes = alert.get("labels", {}), alert.get("annotations", {})
            print(
                f"[{receiver}] {alert.get('status', '?').upper()} {labels.get('alertname')} "
                f"({labels.get('severity')}): {notes.get('summary', '')}",
                flush=True,
            )
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:  # keep the console for pages only
        pass


def _spawn(args: list[str], log_name: str, settings: LocalSettings) -> subprocess.Popen[bytes]:
    log = (settings.data_dir / log_name).open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "streams.cli", *args],
        cwd=PROJECT_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def _stop_process(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        import os

        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        import os

        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def run_demo(settings: LocalSettings, rate: float = 300.0, speedup: float = 60.0, processes: int = 1) -> None:
    from deploy.local import monitoring as ops

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    cleanup: list[tuple[str, Any]] = []
    stop_requested = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop_requested.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        host, _, port = settings.bootstrap_servers.split(",")[0].rpartition(":")
        broker = KafkaBroker(settings.data_dir / "kafka", host=host, port=int(port),
                             controller_port=settings.kafka_controller_port)  # fmt: skip
        if broker.pid() is None:
            print(f"starting Kafka {broker.bootstrap} (first run downloads it from Maven Central) ...", flush=True)
            broker.start()
            cleanup.append(("Kafka", broker.stop))
        else:
            broker.wait_ready()
            print(f"reusing the running Kafka at {broker.bootstrap}", flush=True)
        create_topics(settings)

        pager = ThreadingHTTPServer(("127.0.0.1", PAGER_PORT), _PagerHandler)
        threading.Thread(target=pager.serve_forever, daemon=True).start()
        cleanup.append(("pager", pager.shutdown))

        worker = _spawn(["worker", "--processes", str(processes)], "worker.log", settings)
        cleanup.append(("worker", lambda: _stop_process(worker)))
        # `cxpulse worker --processes N`: process i serves /metrics on the web port + i; scrape each.
        worker_targets = [f"{settings.web_host}:{settings.web_port + i}" for i in range(processes)]
        metrics_url = f"http://{worker_targets[0]}/metrics"
        for target in worker_targets:
            _wait_http(f"http://{target}/metrics", worker, 120)

        alertmanager = ops.start_alertmanager(
            port=settings.alertmanager_port,
            data_dir=settings.data_dir / "alertmanager",
            oncall_url=f"http://127.0.0.1:{PAGER_PORT}/oncall",
            ticket_url=f"http://127.0.0.1:{PAGER_PORT}/ticket",
        )
        cleanup.append(("Alertmanager", lambda: ops.stop(alertmanager)))
        prometheus = ops.start_prometheus(
            port=settings.prometheus_port,
            data_dir=settings.data_dir / "prometheus",
            targets=worker_targets,
            alertmanagers=[f"127.0.0.1:{settings.alertmanager_port}"],
        )
        cleanup.append(("Prometheus", lambda: ops.stop(prometheus)))

        simulator = _spawn(
            ["simulate", "--rate", str(rate), "--speedup", str(speedup), "--duration", str(4 * 3600),
             "--start", "now", "--seed", "1", *(arg for i in DEMO_INCIDENTS for arg in ("--incident", i))],
            "simulator.log", settings,
        )  # fmt: skip
        cleanup.append(("simulator", lambda: _stop_process(simulator)))
        _print_where_to_look(settings, metrics_url, speedup)
        while not stop_requested.is_set():
            for name, proc in (("worker", worker), ("simulator", simulator)):
                if proc.poll() is not None:
                    print(f"{name} exited with {proc.returncode}; see {settings.data_dir / (name + '.log')}")
                    stop_requested.set()
            stop_requested.wait(1.0)
    finally:
        print("\nstopping ...", flush=True)
        for name, stop in reversed(cleanup):
            try:
                stop()
                print(f"  {name} stopped", flush=True)
            except Exception as exc:  # keep stopping the rest
                print(f"  {name}: {exc}", flush=True)


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    host, port = url.split("//")[1].split("/")[0].split(":")
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        if port_open(host, int(port)):
            with contextlib.suppress(OSError):
                urllib.request.urlopen(url, timeout=2).read()
                return
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


def _print_where_to_look(settings: LocalSettings, metrics_url: str, speedup: float) -> None:
    prom = f"http://127.0.0.1:{settings.prometheus_port}"
    queries = [
        "cxpulse:csat_score:mean_rate15m", "sum by (reason) (rate(cxpulse_complaints_total[1m]))",
        "sum by (page) (rate(cxpulse_rage_clicks_total[1m]))", "cxpulse_alerts_active",
    ]  # fmt: skip
    graph = (
        prom
        + "/graph?"
        + "&".join(f"g{i}.expr={quote(q)}&g{i}.tab=0&g{i}.range_input=15m" for i, q in enumerate(queries))
    )
    print(
        f"""
cxpulse demo is running (event time runs {speedup:.0f}x faster than the clock).
  worker metrics   {metrics_url}
  Prometheus       {graph}
  alerts           {prom}/alerts   Alertmanager http://127.0.0.1:{settings.alertmanager_port}
  notifications    .venv/bin/cxpulse tail notifications   (in another terminal)
  anomaly alerts   .venv/bin/cxpulse tail alerts
  logs             {settings.data_dir}/worker.log, simulator.log
Incidents: carrier delay from ~2 min, complaint spike ~3 min, rage-click storm ~9 min,
error storm ~15 min. Pages from Alertmanager print below.
Ctrl-C stops everything.
""",
        flush=True,
    )
