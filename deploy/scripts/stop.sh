#!/usr/bin/env bash
# Stop the Prometheus and Alertmanager started by deploy/scripts/start.sh (by their pid files in
# var/prometheus and var/alertmanager; the whole process group of each).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
exec "$PY" - <<'PYEOF'
from deploy.local import monitoring as ops
from streams.settings import get_settings
for name in ("prometheus", "alertmanager"):
    stopped = ops.stop(get_settings().data_dir / name)
    print(f"{name}: {'stopped' if stopped else 'not running'}")
PYEOF
