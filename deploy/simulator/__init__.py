"""Seeded, realistic traffic for the three input streams, its incidents and its ground truth.

:mod:`deploy.simulator.simulation` generates the world (same config, same events, byte for
byte) and records what truly happened; :mod:`deploy.simulator.producer` writes it to Kafka at a
chosen pace. Used by ``cxpulse simulate``, the demo, the tests and the benchmarks.
"""
