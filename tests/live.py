"""The live pipeline: a real worker on a real broker, driven by the simulator through all its
incidents, scraped by a real Prometheus that evaluates the project's rules and pages a real
Alertmanager. Built once per test session; tests read from it, none write to it.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from deploy.local import monitoring as ops
from deploy.simulator.producer import run_simulation
from deploy.simulator.simulation import Incident, SimulationConfig
from streams.settings import Settings
from tests.kafka_harness import WorkerProcess, isolated_settings, produce, sample, start_worker, wait_signals_drained

HOUR = 3600.0
SPAN = 38 * HOUR  # Monday 00:00 to Tuesday 14:00 UTC: the input ends in the daytime
LIVE_INCIDENTS = (
    "carrier_delay:carrier=dhl,region=north,at=4h,duration=14h,factor=2.5",
    "rage_click_storm:page=/checkout,element=button#place-order,at=20h,duration=20m",
    "error_storm:page=/cart,at=26h,duration=20m",
    # Daytime, and still running when the input ends: its episode is open while Prometheus
    # evaluates the ComplaintSpike rule.
    "complaint_spike:reason=delivery,at=2250m,duration=45m,factor=6",
)
MALFORMED = (b"{not json", b'{"event_id": "x", "ts": "2024-01-01T00:00:00Z", "type": "teleport"}', b"[]")


def live_config(seed: int = 11) -> SimulationConfig:
    return SimulationConfig(
        seed=seed,
        sim_seconds=SPAN,
        events_per_sim_second=0.6,
        mix={"clickstream": 0.6, "contacts": 0.25, "deliveries": 0.15},
        n_customers=5000,
        incidents=tuple(Incident.parse(i) for i in LIVE_INCIDENTS),
    )


class _Pager(BaseHTTPRequestHandler):
    """Records what Alertmanager sends to the on-call and ticket webhooks."""

    pages: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        type(self).pages.append({"receiver": self.path.strip("/"), **body})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class LivePipeline:
    settings: Settings
    worker: WorkerProcess
    prometheus_url: str
    alertmanager_url: str
    truth: dict[str, Any]
    produced: dict[str, Any]
    pages: list[dict[str, Any]] = field(default_factory=list)
    processes: list[Any] = field(default_factory=list)

    @property
    def metrics_url(self) -> str:
        return self.worker.metrics_url


def start_live_pipeline(bootstrap: str, root: Path) -> LivePipeline:
    settings = isolated_settings(bootstrap, root / "var", partitions=2)
    worker = start_worker(settings, root / "logs")
    pager = ThreadingHTTPServer(("127.0.0.1", 0), _Pager)
    threading.Thread(target=pager.serve_forever, daemon=True).start()
    pager_url = f"http://127.0.0.1:{pager.server_address[1]}"
    am_port, prom_port = ops.free_port(), ops.free_port()
    alertmanager = ops.start_alertmanager(
        port=am_port, data_dir=root / "alertmanager", oncall_url=f"{pager_url}/oncall",
        ticket_url=f"{pager_url}/ticket", group_wait="1s", group_interval="1s",
    )  # fmt: skip
    prometheus = ops.start_prometheus(
        port=prom_port, data_dir=root / "prometheus", targets=[f"127.0.0.1:{settings.web_port}"],
        alertmanagers=[f"127.0.0.1:{am_port}"], scrape_interval="2s", evaluation_interval="2s",
    )  # fmt: skip
    truth_path = root / "truth.json"
    produced = run_simulation(
        live_config(),
        bootstrap_servers=bootstrap,
        topics={
            "clickstream": settings.topic_clickstream,
            "contacts": settings.topic_contacts,
            "deliveries": settings.topic_deliveries,
        },
        batch_size=5,
        progress=False,
        truth_path=truth_path,
    )
    assert produced["delivery_failures"] == 0 and produced["undelivered"] == 0
    topics = (settings.topic_clickstream, settings.topic_contacts, settings.topic_deliveries)
    produce(settings, [(topic, b"bad", raw) for topic in topics for raw in MALFORMED])
    expected = {
        s: produced["per_stream"][s]["messages"] + len(MALFORMED) for s in ("clickstream", "contacts", "deliveries")
    }
    worker.wait_for(
        lambda m: all(sample(m, "cxpulse_messages_total", stream=s) >= n for s, n in expected.items()),
        timeout=900,
        what="the worker to process the simulated traffic",
    )
    wait_signals_drained([worker])
    pipeline = LivePipeline(
        settings, worker, f"http://127.0.0.1:{prom_port}", f"http://127.0.0.1:{am_port}",
        json.loads(truth_path.read_text()), produced, _Pager.pages,
    )  # fmt: skip
    pipeline.processes = [prometheus, alertmanager, pager]
    return pipeline


def stop_live_pipeline(pipeline: LivePipeline) -> None:
    prometheus, alertmanager, pager = pipeline.processes
    try:
        pipeline.worker.stop()
    finally:
        try:
            ops.stop(prometheus)
            ops.stop(alertmanager)
        finally:
            pager.shutdown()
