"""execution's Prometheus metrics, declared together; names carry their unit.

Fill rate per symbol = filled_qty / ordered_qty over completed orders
(``edgebus_execution_fill_rate_ratio``); time to fill is market time from the order's
decision to each fill (seed 002 fill-time SLA as quoted in issue 7).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

FILLS = Counter(
    "edgebus_execution_fills_total", "Fills (partial or full)", ["symbol", "liquidity", "strategy"]
)
FILLED_QTY = Counter(
    "edgebus_execution_filled_qty_total", "Quantity filled (units of the symbol)", ["symbol"]
)
FEES_USD = Counter(
    "edgebus_execution_fees_usd_total", "Fees paid, USD (rebates: the counter beside)", ["symbol"]
)
# A counter only goes up: a maker rebate (a negative fee) is counted apart.
REBATES_USD = Counter(
    "edgebus_execution_rebates_usd_total", "Maker rebates received, USD", ["symbol"]
)
ORDERS = Counter(
    "edgebus_execution_orders_total",
    "Orders that left the working set, by outcome (filled, cancelled, rejected)",
    ["symbol", "outcome"],
)
ORDERED_QTY = Counter(
    "edgebus_execution_completed_ordered_qty_total",
    "Ordered quantity of completed orders",
    ["symbol"],
)
COMPLETED_FILLED_QTY = Counter(
    "edgebus_execution_completed_filled_qty_total",
    "Filled quantity of completed orders",
    ["symbol"],
)
FILL_RATE = Gauge(
    "edgebus_execution_fill_rate_ratio",
    "Filled / ordered quantity over completed orders since start",
    ["symbol"],
)
REJECTIONS = Counter(
    "edgebus_execution_rejections_total", "Rejections and cancels by reason", ["symbol", "reason"]
)
DUPLICATES = Counter(
    "edgebus_execution_duplicate_orders_total", "Redelivered orders ignored (already seen)"
)
TIME_TO_FILL = Histogram(
    "edgebus_execution_time_to_fill_seconds",
    "Market time from the order's decision to each fill",
    ["symbol"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
SLIPPAGE_BPS = Histogram(
    "edgebus_execution_slippage_bps",
    "Fill price versus decision price, bps (positive = cost)",
    ["symbol"],
    buckets=(-50, -20, -10, -5, -2, -1, 0, 1, 2, 5, 10, 20, 50, 100),
)
WORKING = Gauge("edgebus_execution_working_orders", "Orders being worked")
EQUITY_USD = Gauge("edgebus_execution_equity_usd", "Starting equity plus total PnL, USD")
PNL_USD = Gauge(
    "edgebus_execution_pnl_usd", "Total PnL (realized + unrealized - fees), USD", ["symbol"]
)
DAILY_PNL_USD = Gauge("edgebus_execution_daily_pnl_usd", "Total PnL since 00:00 UTC, USD")
FILL_TYPES = Counter(
    "edgebus_execution_fill_types_total",
    "Orders that left the working set by seed 001 §6 fill type (full, partial, none, expired)",
    ["symbol", "fill_type"],
)
# Seed 000's daily metric 4: the fill model's pre-trade estimate against what each fill
# cost (both bps of notional against the decision price, positive = cost).
_COST_BUCKETS = (-20, -10, -5, -2, -1, 0, 0.5, 1, 2, 3, 5, 10, 20, 30, 50, 100)
PREDICTED_COST_BPS = Histogram(
    "edgebus_execution_predicted_cost_bps",
    "Pre-trade cost estimate of each fill's order (half-spread + impact + latency), bps",
    ["symbol"],
    buckets=_COST_BUCKETS,
)
REALISED_COST_BPS = Histogram(
    "edgebus_execution_realised_cost_bps",
    "Realised cost of each fill (its slippage against the decision price), bps",
    ["symbol"],
    buckets=_COST_BUCKETS,
)
COST_ERROR_BPS = Histogram(
    "edgebus_execution_cost_error_bps",
    "Realised minus predicted cost of each fill, bps",
    ["symbol"],
    buckets=(-50, -20, -10, -5, -2, -1, -0.5, 0, 0.5, 1, 2, 5, 10, 20, 50),
)


def record_costs(costs: list[Any], completed: list[Any]) -> None:
    """The engine's ``Outputs.costs`` and ``Outputs.completed`` of one written batch."""
    for c in costs:
        PREDICTED_COST_BPS.labels(c.symbol).observe(c.predicted_bps)
        REALISED_COST_BPS.labels(c.symbol).observe(c.realised_bps)
        COST_ERROR_BPS.labels(c.symbol).observe(c.realised_bps - c.predicted_bps)
    for done in completed:
        FILL_TYPES.labels(done.symbol, done.fill_type).inc()
