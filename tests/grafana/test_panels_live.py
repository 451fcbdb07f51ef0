"""Every panel's every query returns data from a Prometheus scraping a real worker that the
simulator drove through all its incidents (fixture ``live_pipeline`` from tests/conftest.py:
``.metrics_url`` of the worker, ``.prometheus_url`` of a Prometheus started by deploy.local.monitoring with
the project's recording rules)."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request

from grafana.queries import all_panel_queries

#: How long to keep asking: recording rules need two scrapes and one evaluation after start.
DEADLINE_SECONDS = 90.0


def _query(prometheus_url: str, expr: str) -> tuple[str, list]:
    url = f"{prometheus_url.rstrip('/')}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            payload = json.loads(resp.read())
    except urllib.error.HTTPError as exc:  # 400 = bad PromQL
        return f"HTTP {exc.code}: {exc.read()[:300]!r}", []
    if payload.get("status") != "success":
        return f"{payload.get('errorType')}: {payload.get('error')}", []
    return "", payload["data"]["result"]


def test_every_panel_query_returns_data(live_pipeline) -> None:
    queries = all_panel_queries()
    assert queries
    with urllib.request.urlopen(live_pipeline.metrics_url, timeout=10) as resp:
        assert b"cxpulse_events_total" in resp.read()
    pending = {(board, panel, expr) for board, panel, expr in queries}
    errors: dict[tuple[str, str, str], str] = {}
    deadline = time.monotonic() + DEADLINE_SECONDS
    while pending and time.monotonic() < deadline:
        for key in sorted(pending):
            error, result = _query(live_pipeline.prometheus_url, key[2])
            if error:
                errors[key] = error
                pending.discard(key)
            elif result:
                pending.discard(key)
        if pending:
            time.sleep(2)
    problems = [f"{b} / {p}: {e}\n    {x}" for (b, p, x), e in sorted(errors.items())]
    problems += [f"{b} / {p}: no data\n    {x}" for b, p, x in sorted(pending)]
    assert not problems, f"{len(problems)} of {len(queries)} panel queries failed:\n" + "\n".join(
        problems
    )
