"""deploy.local.monitoring with real processes: Prometheus scrapes a tiny exporter and evaluates the project's
recording rules; an alert travels Prometheus -> Alertmanager -> webhook; stop() leaves nothing."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from deploy.local import monitoring as ops

TEST_RULES = """
groups:
  - name: cxpulse_test_only
    rules:
      - alert: TestPage
        expr: cxpulse_test_trigger{job="cxpulse",kind="page"} > 0
        for: 0s
        labels: {severity: critical, area: test-page}
        annotations:
          summary: test page
          description: "trigger is {{ $value }}"
          runbook_url: https://example.invalid/runbook
      - alert: TestInhibited
        # a warning about the same thing (area) as the critical TestPage: inhibited
        expr: cxpulse_test_trigger{job="cxpulse",kind="page"} > 0
        for: 0s
        labels: {severity: warning, area: test-page}
        annotations:
          summary: inhibited
          description: "trigger is {{ $value }}"
          runbook_url: https://example.invalid/runbook
      - alert: TestTicket
        expr: cxpulse_test_trigger{job="cxpulse",kind="ticket"} > 0
        for: 0s
        labels: {severity: warning, area: test-ticket}
        annotations:
          summary: test ticket
          description: "trigger is {{ $value }}"
          runbook_url: https://example.invalid/runbook
"""


class Exporter:
    """A fixed exposition on 127.0.0.1 from a fresh registry, with counters that keep moving."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter("cxpulse_events", "x", ["stream", "type"], registry=self.registry)
        self.views = Counter("cxpulse_page_views", "x", ["page"], registry=self.registry)
        self.errors = Counter("cxpulse_client_errors", "x", ["page"], registry=self.registry)
        self.trigger = Gauge("cxpulse_test_trigger", "x", ["kind"], registry=self.registry)
        self.port = ops.free_port()
        self.server, self.thread = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(0.1):
            self.events.labels("clickstream", "page_view").inc(10)
            self.views.labels("/checkout").inc(4)
            self.errors.labels("/checkout").inc(1)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    exp = Exporter()
    yield exp
    exp.close()


def query(prom: ops.ManagedProcess, expr: str) -> list[dict]:
    status, body = ops.http_get(f"{prom.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    assert status == 200, body
    payload = json.loads(body)
    assert payload["status"] == "success", payload
    return payload["data"]["result"]


def wait_for_query(prom: ops.ManagedProcess, expr: str, timeout: float = 30.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = query(prom, expr)
        if result:
            return result
        time.sleep(0.25)
    raise AssertionError(f"{expr} returned nothing in {timeout}s")


def test_ensure_installed_finds_every_tool(binaries: dict[str, str]) -> None:
    assert set(binaries) == {"prometheus", "promtool", "alertmanager", "amtool"}
    assert all(os.access(p, os.X_OK) for p in binaries.values())


def test_prometheus_scrapes_and_evaluates_recording_rules(
    binaries: dict[str, str], exporter: Exporter, tmp_path: Path
) -> None:
    prom = ops.start_prometheus(
        port=ops.free_port(),
        data_dir=tmp_path / "prometheus",
        targets=[exporter.target],
        alertmanagers=[],
        scrape_interval="1s",
        evaluation_interval="1s",
    )
    with prom:
        assert (tmp_path / "prometheus" / "prometheus.pid").read_text().split()[0] == str(prom.pid)
        up = wait_for_query(prom, 'up{job="cxpulse"} == 1')
        assert up[0]["metric"]["instance"] == exporter.target
        # The project's recording rules (deploy/prometheus/rules/recording.yml) are loaded and
        # evaluate against the scraped counters.
        events = wait_for_query(prom, 'cxpulse:events:rate5m{stream="clickstream"} > 0')
        assert float(events[0]["value"][1]) > 0  # (rate() over 5m of a few seconds' data)
        ratio = wait_for_query(prom, "cxpulse:client_errors:ratio_rate5m > 0")
        assert float(ratio[0]["value"][1]) == pytest.approx(0.25, rel=0.05)
        rules = json.loads(ops.http_get(f"{prom.url}/api/v1/rules")[1])["data"]["groups"]
        assert {g["name"] for g in rules} >= {"cxpulse_pipeline", "cxpulse_scorecard", "cxpulse_cx"}
        assert all(r["health"] == "ok" for g in rules for r in g["rules"])
    assert not prom.running()
    assert not (tmp_path / "prometheus" / "prometheus.pid").exists()
    with pytest.raises(ProcessLookupError):
        os.killpg(prom.pid, 0)


def test_alert_reaches_oncall_and_ticket_webhooks(
    binaries: dict[str, str], exporter: Exporter, webhook, tmp_path: Path
) -> None:
    rules = tmp_path / "test_alerts.yml"
    rules.write_text(TEST_RULES)
    am = ops.start_alertmanager(
        port=ops.free_port(),
        data_dir=tmp_path / "alertmanager",
        oncall_url=webhook.url("/oncall"),
        ticket_url=webhook.url("/ticket"),
        group_wait="1s",
        group_interval="1s",
    )
    try:
        prom = ops.start_prometheus(
            port=ops.free_port(),
            data_dir=tmp_path / "prometheus",
            targets=[exporter.target],
            alertmanagers=[am.address],
            rule_files=[rules],
            scrape_interval="1s",
            evaluation_interval="1s",
        )
        with prom:
            exporter.trigger.labels("page").set(7)
            exporter.trigger.labels("ticket").set(3)

            def both(received: list) -> bool:
                return {p for p, _ in received} >= {"/oncall", "/ticket"}

            received = webhook.wait_for(both, timeout=45)
            assert both(received), received
            by_path = {path: body for path, body in reversed(received)}
            page = by_path["/oncall"]
            assert page["receiver"] == "oncall"
            assert page["status"] == "firing"
            assert [a["labels"]["alertname"] for a in page["alerts"]] == ["TestPage"]
            assert page["alerts"][0]["annotations"]["description"] == "trigger is 7"
            ticket = by_path["/ticket"]
            assert ticket["receiver"] == "ticket"
            assert [a["labels"]["alertname"] for a in ticket["alerts"]] == ["TestTicket"]
            # the warning about the paged thing is inhibited (Alertmanager shows it suppressed)
            status, body = ops.http_get(f"{am.url}/api/v2/alerts?filter=alertname%3DTestInhibited")
            assert status == 200, body
            (inhibited,) = json.loads(body)
            assert inhibited["status"]["state"] == "suppressed"
            assert inhibited["status"]["inhibitedBy"]
            time.sleep(2)
            names = {a["labels"]["alertname"] for _, b in webhook.received for a in b["alerts"]}
            assert "TestInhibited" not in names
    finally:
        ops.stop(am)
    assert not am.running()


def test_stop_by_data_dir_and_port_conflict(binaries: dict[str, str], tmp_path: Path) -> None:
    port = ops.free_port()
    am = ops.start_alertmanager(port=port, data_dir=tmp_path / "am")
    try:
        assert ops.status(tmp_path / "am") is not None
        with pytest.raises(ops.OpsError, match="in use"):
            ops.start_alertmanager(port=port, data_dir=tmp_path / "am2")
    finally:
        # as `cxpulse alertmanager stop` does: from the pid file in the data dir
        assert ops.stop(tmp_path / "am") is True
    am.popen.wait(timeout=5)
    assert ops.status(tmp_path / "am") is None
    assert ops.stop(tmp_path / "am") is False
