"""The trading metrics Grafana reads, declared together; names carry their unit."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EDGE_BLENDED_BPS = Gauge("edge_blended_bps", "Latest blended edge", ["symbol"])
POSITION_SIZE_USD = Gauge("position_size_usd", "Current position value (signed)", ["symbol"])
VAR_PCT = Gauge("var_pct", "One-day parametric VaR as a percent of equity", ["symbol"])
PNL_USD = Gauge("pnl_usd", "Total PnL (realized + unrealized - fees)", ["symbol"])
SIGNALS_TOTAL = Counter("signals_total", "Signals seen", ["model_id", "shadow"])
ORDERS_TOTAL = Counter("orders_total", "Orders seen", ["symbol", "side"])
FILLS_TOTAL = Counter("fills_total", "Fills seen", ["symbol", "side"])
REJECTIONS_TOTAL = Counter("rejections_total", "Execution rejections", ["reason"])
RISK_DECISIONS_TOTAL = Counter("risk_decisions_total", "Risk decisions", ["action", "reason"])
ROUTER_SWITCHES_TOTAL = Counter("router_switches_total", "Leading-model switches", ["symbol"])
DLQ_ENTRIES_TOTAL = Counter(
    "dlq_entries_total", "Entries seen on the dlq", ["source_stream", "service"]
)
TRADING_STATE = Gauge("trading_state", "1 for the state in force", ["state"])
TICK_TO_FILL_SECONDS = Histogram(
    "tick_to_fill_seconds",
    "Originating tick to fill seen by telemetry",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
