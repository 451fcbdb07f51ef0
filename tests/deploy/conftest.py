"""Fixtures for the deploy tests: real Prometheus/Alertmanager processes through deploy.local.monitoring."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from deploy.local import monitoring as ops

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def binaries() -> dict[str, str]:
    """Paths of prometheus, promtool, alertmanager, amtool (installed with apt-get if missing)."""
    return ops.ensure_installed()


class WebhookReceiver:
    """A tiny Alertmanager webhook receiver on 127.0.0.1 recording every POST by path."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict]] = []
        self.event = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.event:
                    receiver.received.append((self.path, json.loads(body)))
                    receiver.event.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_for(self, predicate, timeout: float) -> list[tuple[str, dict]]:
        with self.event:
            self.event.wait_for(lambda: predicate(self.received), timeout=timeout)
            return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()
