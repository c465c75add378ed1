"""Prometheus metrics: every service serves ``/metrics`` on its own port."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server

from services.common.broker import free_port

# Buckets for in-process latencies: 100 us .. 10 s.
LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


def serve_metrics(host: str, port: int, registry: CollectorRegistry = REGISTRY) -> int:
    """Start the /metrics HTTP endpoint in a daemon thread; returns the bound port."""
    bound = port or free_port(host)
    start_http_server(bound, addr=host, registry=registry)
    return bound
