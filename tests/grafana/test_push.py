"""grafana.push against a minimal local stand-in of Grafana's HTTP API (127.0.0.1), checking
the requests grafana-client sends: datasource upsert, folder, one dashboard per JSON file."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from grafana.panels import DATASOURCE_UID
from grafana.push import push

DASHBOARDS = Path(__file__).resolve().parents[2] / "grafana" / "dashboards"


class FakeGrafana:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict | None, str | None]] = []
        self.folders: set[str] = set()
        self.datasources: dict[str, dict] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, code: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> dict | None:
                n = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(n)) if n else None

            def _handle(self, method: str) -> None:
                body = self._body()
                fake.requests.append((method, self.path, body, self.headers.get("Authorization")))
                if method == "GET" and self.path.startswith("/api/folders/"):
                    uid = self.path.rsplit("/", 1)[1]
                    return self._reply(200 if uid in fake.folders else 404, {"uid": uid})
                if method == "POST" and self.path == "/api/folders":
                    fake.folders.add(body["uid"])
                    return self._reply(200, {"uid": body["uid"]})
                if method == "GET" and self.path.startswith("/api/datasources/uid/"):
                    uid = self.path.rsplit("/", 1)[1]
                    if uid in fake.datasources:
                        return self._reply(200, fake.datasources[uid])
                    return self._reply(404, {"message": "not found"})
                if method in ("POST", "PUT") and self.path.startswith("/api/datasources"):
                    fake.datasources[body["uid"]] = body
                    return self._reply(200, {"datasource": body})
                if method == "POST" and self.path == "/api/dashboards/db":
                    return self._reply(200, {"status": "success", "uid": body["dashboard"]["uid"]})
                return self._reply(404, {"message": "unexpected"})

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PUT(self) -> None:
                self._handle("PUT")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    fake = FakeGrafana()
    yield fake
    fake.close()


def test_push_creates_datasource_folder_and_every_board(grafana: FakeGrafana) -> None:
    uids = push(grafana.url, "tok123", DASHBOARDS, prometheus_url="http://127.0.0.1:9090")
    boards = sorted(DASHBOARDS.glob("*.json"))
    assert sorted(uids) == sorted(json.loads(p.read_text())["uid"] for p in boards)
    assert grafana.datasources[DATASOURCE_UID]["url"] == "http://127.0.0.1:9090"
    assert "cxpulse" in grafana.folders
    posts = [b for m, path, b, _ in grafana.requests if path == "/api/dashboards/db"]
    assert len(posts) == len(boards)
    assert all(p["overwrite"] and p["folderUid"] == "cxpulse" for p in posts)
    assert all(auth == "Bearer tok123" for *_, auth in grafana.requests)
    # second push: datasource updated in place, folder reused
    push(grafana.url, "tok123", DASHBOARDS, prometheus_url="http://prom:9090")
    assert grafana.datasources[DATASOURCE_UID]["url"] == "http://prom:9090"
    assert sum(1 for m, p, *_ in grafana.requests if m == "POST" and p == "/api/folders") == 1
