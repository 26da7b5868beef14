"""The trading metrics Grafana reads, declared together; names carry their unit.

Per-symbol gauges also carry a ``symbol="portfolio"`` series (the aggregate, see
docs/telemetry.md): sum over ``symbol!="portfolio"`` to avoid counting it twice.
"""

from __future__ import annotations

import math
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

PORTFOLIO = "portfolio"

# ---- risk and positions (per symbol + portfolio) --------------------------------------
EDGE_BLENDED_BPS = Gauge("edge_blended_bps", "Latest blended edge (risk.decisions)", ["symbol"])
POSITION_SIZE_USD = Gauge(
    "position_size_usd", "Current position value, signed; portfolio = net sum", ["symbol"]
)
GROSS_EXPOSURE_USD = Gauge("gross_exposure_usd", "Sum of |position value| over symbols")
VAR_PCT = Gauge(
    "var_pct", "One-day VaR in percent of equity; portfolio from risk or sum", ["symbol"]
)
PNL_USD = Gauge("pnl_usd", "Total PnL (realized + unrealized - fees)", ["symbol"])
PNL_REALIZED_USD = Gauge("pnl_realized_usd", "Realized PnL before fees", ["symbol"])
PNL_UNREALIZED_USD = Gauge("pnl_unrealized_usd", "Unrealized PnL at the mark", ["symbol"])
FEES_USD = Gauge("fees_usd", "Fees paid (negative = rebates)", ["symbol"])
DRAWDOWN_USD = Gauge("drawdown_usd", "Peak total PnL minus current total PnL", ["symbol"])
DRAWDOWN_PCT = Gauge("drawdown_pct", "Drawdown in percent of equity + peak PnL", ["symbol"])

# ---- attribution (accumulating gauges: PnL and rebates can be negative) ----------------
PNL_ATTRIBUTED_USD = Gauge(
    "pnl_attributed_usd",
    "Realized PnL split by consensus weight of the trade's opening decision",
    ["engine", "regime", "venue"],
)
COSTS_USD = Gauge("costs_usd", "Trading costs by kind (fee, slippage, funding)", ["kind", "venue"])

# ---- flow ----------------------------------------------------------------------------
SIGNALS_TOTAL = Counter("signals_total", "Signals seen", ["model_id", "shadow"])
CONSENSUS_SCORE = Gauge("consensus_score", "Latest consensus score of the router", ["symbol"])
MODEL_WEIGHT = Gauge(
    "model_weight", "Weight of a model in the latest consensus vote", ["symbol", "model_id"]
)
ORDERS_TOTAL = Counter("orders_total", "Orders seen", ["symbol", "side"])
FILLS_TOTAL = Counter(
    "fills_total", "Fills seen (partial fills count each)", ["symbol", "side", "venue"]
)
FILLED_USD_TOTAL = Counter("filled_usd_total", "Notional filled", ["symbol"])
REJECTIONS_TOTAL = Counter("rejections_total", "Execution rejections", ["reason"])
RISK_DECISIONS_TOTAL = Counter("risk_decisions_total", "Risk decisions", ["action", "reason"])
# Created at 0 when a symbol is first seen, so increase() counts its first switches too.
ROUTER_SWITCHES_TOTAL = Counter("router_switches_total", "Leading-model switches", ["symbol"])
ACTIVE_MODEL = Gauge("active_model", "1 for the leading model of a symbol", ["symbol", "model_id"])
DLQ_ENTRIES_TOTAL = Counter(
    "dlq_entries_total", "Entries seen on the dlq", ["source_stream", "service"]
)
EVENTS_TOTAL = Counter("events_total", "Standard events written", ["action"])
TRADES_CLOSED_TOTAL = Counter("trades_closed_total", "Round trips closed", ["symbol"])
TRADING_STATE = Gauge("trading_state", "1 for the state in force", ["state"])

# ---- latency (seed 000 §4 as quoted in issue 8) --------------------------------------
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
TICK_TO_FILL_SECONDS = Histogram(
    "tick_to_fill_seconds", "Originating tick to fill seen by telemetry", buckets=LATENCY_BUCKETS_S
)
HOP_SECONDS = Histogram(
    "pipeline_hop_seconds",
    "Per-hop latency of filled traces, from entry ids (1 ms resolution)",
    ["hop"],
    buckets=LATENCY_BUCKETS_S,
)

# ---- streams ---------------------------------------------------------------------------
STREAM_LENGTH = Gauge("stream_length_entries", "XLEN of each stream", ["stream"])
STREAM_GROUP_LAG = Gauge(
    "stream_group_lag_entries",
    "Entries not yet delivered to the group (XINFO)",
    ["stream", "group"],
)
STREAM_GROUP_PENDING = Gauge(
    "stream_group_pending_entries", "Delivered, not yet acknowledged", ["stream", "group"]
)
TIMESERIES_ENABLED = Gauge("telemetry_timeseries_enabled", "1 when RedisTimeSeries is written")


# ---- daily metrics of seed 000 (daily.py), set when a day of event time closes -------
# NaN until the first day closes, and NaN for a day with nothing to measure (no fill
# paired with its decision, no warning, no drawdown, no consensus vote): never 0.
DAILY_SLIPPAGE_ERROR_BPS = Gauge(
    "daily_slippage_error_bps",
    "Realised minus risk's predicted cost of the last closed day's fills (bias, MAE, RMSE)",
    ["stat"],
)
DAILY_EARLY_WARNING_RATIO = Gauge(
    "daily_early_warning_ratio",
    "Breaker trips against 5 % drawdown starts of the last closed day, lead 1 day",
    ["stat"],
)
DAILY_CONSENSUS_DIVERSITY_RATIO = Gauge(
    "daily_consensus_diversity_ratio",
    "Mean direction disagreement of the last closed day's consensus votes (0 to 1)",
)
DAILY_INPUTS = Gauge(
    "daily_metric_inputs", "What the last closed day's metrics were computed on", ["input"]
)
DAILY_DAY_START_SECONDS = Gauge(
    "daily_metrics_day_start_seconds", "UTC start of the last closed day (event time)"
)
DAILY_INPUTS_DROPPED_TOTAL = Counter(
    "daily_metric_inputs_dropped_total",
    "Inputs left out: past the per-day cap (oldest first) or of a day already closed",
    ["reason"],
)
SLIPPAGE_STATS = ("bias", "mae", "rmse")
WARNING_STATS = ("precision", "recall")
DAILY_INPUT_KINDS = ("fills", "warnings", "drawdowns", "consensus")
for _stat in SLIPPAGE_STATS:
    DAILY_SLIPPAGE_ERROR_BPS.labels(_stat).set(math.nan)
for _stat in WARNING_STATS:
    DAILY_EARLY_WARNING_RATIO.labels(_stat).set(math.nan)
DAILY_CONSENSUS_DIVERSITY_RATIO.set(math.nan)
for _kind in DAILY_INPUT_KINDS:
    DAILY_INPUTS.labels(_kind).set(0)
DAILY_DAY_START_SECONDS.set(math.nan)
for _reason in ("cap", "late"):
    DAILY_INPUTS_DROPPED_TOTAL.labels(_reason)


class LabelCache:
    """Children of labelled metrics, bound once per label values: ``metric.labels(...)``
    takes the metric's lock and rebuilds its key on every call (about 1 us, and telemetry
    calls it several times per message) to return the same child each time; this is one
    dict lookup. ``cache(metric, *values)`` is ``metric.labels(*values)``."""

    __slots__ = ("_children",)

    def __init__(self) -> None:
        self._children: dict[tuple[Any, ...], Any] = {}

    def __call__(self, metric: Any, *values: str) -> Any:
        key = (metric, *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child


class BatchWrites:
    """The gauge sets and counter increments of one batch, written at its end (``flush``):
    a gauge gets its last value, a counter the number of increments. The handler runs a
    whole batch with no await in between, so a scrape reads exactly what writes per
    message would have left, for one locked write per series instead of per message.
    (Increments by a float amount stay immediate: summing them first would round
    differently.)"""

    __slots__ = ("child", "_values", "_counts")

    def __init__(self, child: LabelCache) -> None:
        self.child = child
        self._values: dict[Any, float] = {}
        self._counts: dict[Any, int] = {}

    def set(self, gauge: Any, value: float, *labels: str) -> None:
        self._values[self.child(gauge, *labels)] = value

    def count(self, counter: Any, *labels: str) -> None:
        """counter.labels(*labels).inc(), at the end of the batch."""
        c = self.child(counter, *labels)
        self._counts[c] = self._counts.get(c, 0) + 1

    def flush(self) -> None:
        for gauge, value in self._values.items():
            gauge.set(value)
        for counter, n in self._counts.items():
            counter.inc(n)
        self.discard()

    def discard(self) -> None:
        self._values.clear()
        self._counts.clear()
