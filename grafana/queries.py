"""Every panel query of the generated boards, with template variables filled in, so a live test
can ask Prometheus for each one (``tests/grafana/test_panels_live.py``)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

from grafana.generate import DASHBOARDS_DIR

#: Grafana's built-in interval variables -> a concrete window for a direct Prometheus query.
BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
}
_VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")


def substitute(expr: str, values: Mapping[str, str] | None = None) -> str:
    """Replace ``$var`` / ``${var}`` / ``[[var]]``: built-ins by :data:`BUILTINS`, template
    variables by ``values[var]`` or ``.*`` (what "All" means for these boards).

    >>> substitute('rate(x{page=~"$page"}[$__rate_interval])')
    'rate(x{page=~".*"}[1m])'
    >>> substitute('x{carrier=~"${carrier}"}', {"carrier": "dhl"})
    'x{carrier=~"dhl"}'
    """
    values = dict(values or {})

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        if name in BUILTINS:
            return BUILTINS[name]
        return values.get(name, ".*")

    return _VAR.sub(repl, expr)


def _panels(panels: list[dict]):
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels") or [])


def all_panel_queries(
    dashboards_dir: Path | str = DASHBOARDS_DIR, values: Mapping[str, str] | None = None
) -> list[tuple[str, str, str]]:
    """``[(board title, panel title, expr)]`` for every Prometheus target of every panel in
    ``dashboards_dir/*.json``, variables substituted (see :func:`substitute`)."""
    out: list[tuple[str, str, str]] = []
    for path in sorted(Path(dashboards_dir).glob("*.json")):
        board = json.loads(path.read_text())
        for panel in _panels(board.get("panels", [])):
            for target in panel.get("targets") or []:
                if target.get("expr"):
                    out.append((board["title"], panel["title"], substitute(target["expr"], values)))
    return out
