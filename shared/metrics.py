"""The runtime's Prometheus metrics, declared together; names carry their unit.

Service-specific metrics live with the service (telemetry declares the trading ones).
Every runtime metric is labelled by ``service`` so several services can share a
process in tests.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PROCESSED = Counter(
    "edgebus_messages_processed_total", "Entries handled and acknowledged", ["service", "stream"]
)
PRODUCED = Counter("edgebus_messages_produced_total", "Entries written", ["service", "stream"])
HANDLER_ERRORS = Counter(
    "edgebus_handler_errors_total", "Batches whose handler raised (left pending)", ["service"]
)
DLQ = Counter("edgebus_dlq_total", "Entries sent to the dlq", ["service", "stream"])
RECLAIMED = Counter(
    "edgebus_reclaimed_total", "Pending entries taken over with XAUTOCLAIM", ["service", "stream"]
)
REDIS_ERRORS = Counter(
    "edgebus_redis_errors_total",
    "Redis connection errors (each followed by a backoff)",
    ["service"],
)
BATCH_LATENCY = Histogram(
    "edgebus_batch_latency_seconds",
    "Handle + write + ack time of one batch",
    ["service"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
BATCH_SIZE = Histogram(
    "edgebus_batch_size_entries",
    "Entries per batch",
    ["service"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
CONSUMER_LAG = Gauge(
    "edgebus_consumer_lag_entries",
    "Entries in the stream not yet delivered to the group",
    ["service", "stream"],
)
CONSUMER_PENDING = Gauge(
    "edgebus_consumer_pending_entries",
    "Entries delivered to the group but not yet acknowledged",
    ["service", "stream"],
)
REDIS_UP = Gauge("edgebus_redis_up", "1 when the service's last Redis call succeeded", ["service"])
CONFIG_VERSION = Gauge(
    "edgebus_config_version",
    "Version of the config in force (0 = from file)",
    ["service", "component"],
)
CONFIG_RELOADS = Counter(
    "edgebus_config_reloads_total", "Config versions applied", ["service", "component"]
)
TRADING_HALTED = Gauge("edgebus_trading_halted", "1 while trading is halted", ["service"])

# Event time (shared/merge.py): how far each input's producer is complete, how far this
# service's own outputs are, what waits, and when a dead upstream was stepped over.
WATERMARK_NS = Gauge(
    "edgebus_watermark_ns",
    "Event time an upstream's output is complete through",
    ["service", "upstream"],
)
OUT_WATERMARK_NS = Gauge(
    "edgebus_out_watermark_ns",
    "Event time this service's outputs are complete through",
    ["service"],
)
HELD_ENTRIES = Gauge(
    "edgebus_held_entries", "Entries read but waiting for their inputs' watermarks", ["service"]
)
WATERMARK_FORCED = Counter(
    "edgebus_watermark_forced_total",
    "Times an upstream's heartbeat was older than max_hold_ms and no longer held entries back",
    ["service", "upstream"],
)
LATE_ENTRIES = Counter(
    "edgebus_late_entries_total",
    "Entries handled out of event-time order (an upstream broke its watermark, or was forced)",
    ["service"],
)
