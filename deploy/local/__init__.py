"""Running cxpulse on one machine: the local Kafka broker, Prometheus and Alertmanager, the demo,
``tail``, and the one way their system packages get installed. Tooling, not the worker."""
