#!/usr/bin/env bash
# Start Alertmanager then Prometheus on loopback with project-local data (var/alertmanager,
# var/prometheus), scraping the local worker(s). Environment:
#   PROMETHEUS_PORT (9090)  ALERTMANAGER_PORT (9093)  TARGETS ("127.0.0.1:6066", comma-separated)
#   ONCALL_URL / TICKET_URL (webhook receivers; defaults from deploy/alertmanager/alertmanager.yml)
# Stop with deploy/scripts/stop.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
exec "$PY" - <<'PYEOF'
import os
from deploy.local import monitoring as ops
am_port = int(os.environ.get("ALERTMANAGER_PORT", ops.ALERTMANAGER_PORT))
prom_port = int(os.environ.get("PROMETHEUS_PORT", ops.PROMETHEUS_PORT))
targets = [t for t in os.environ.get("TARGETS", "127.0.0.1:6066").split(",") if t]
am = ops.start_alertmanager(port=am_port, oncall_url=os.environ.get("ONCALL_URL"),
                            ticket_url=os.environ.get("TICKET_URL"))
print(f"alertmanager {am.url} pid {am.pid} data {am.data_dir}")
prom = ops.start_prometheus(port=prom_port, targets=targets, alertmanagers=[am.address])
print(f"prometheus   {prom.url} pid {prom.pid} data {prom.data_dir}")
PYEOF
