"""cxpulse Grafana boards as code: ``dashboards`` (the boards), ``generate`` (write JSON),
``push`` (upload to a Grafana), ``queries`` (every panel query, for live tests)."""
