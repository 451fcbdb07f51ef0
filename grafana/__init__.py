"""cxpulse Grafana boards as code: ``boards`` (one module per board), ``panels`` (what they are
built from), ``targets`` (the CX targets the alerts share), ``generate`` (write JSON),
``push`` (upload to a Grafana), ``queries`` (every panel query, for live tests)."""
