"""model_router's own Prometheus metrics, declared together; names carry their unit.

Per-model figures are kept as plain counters in the registry on the hot path and
copied here once per batch (a Prometheus observe per model call would cost more than
most models do).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from prometheus_client import Counter, Gauge

SWITCHES = Counter(
    "model_router_switches_total",
    "Leading-model changes written to router.switches",
    ["symbol"],
)
CONSENSUS_SIGNALS = Counter(
    "model_router_consensus_signals_total",
    "Consensus signals emitted, by whether the |S| > k * rolling_std(S) gate opened",
    ["horizon", "gate"],
)
SHADOW_SIGNALS = Counter(
    "model_router_shadow_signals_total", "Shadow-model signals emitted", ["model_id"]
)
CONSENSUS_SCORE = Gauge(
    "model_router_consensus_score", "Latest consensus score S in [-1, 1]", ["symbol", "horizon"]
)
MODEL_CALLS = Counter("model_router_model_calls_total", "Model predict calls", ["model_id"])
MODEL_WAITS = Counter(
    "model_router_model_waits_total", "Predict calls with no opinion (waiting)", ["model_id"]
)
MODEL_ERRORS = Counter("model_router_model_errors_total", "Model calls that raised", ["model_id"])
MODEL_LATENCY_US = Gauge(
    "model_router_model_latency_mean_us", "Mean predict time per call", ["model_id"]
)
MODEL_HIT_RATE = Gauge(
    "model_router_model_hit_rate_ratio",
    "Share of scored calls in the realised direction",
    ["model_id"],
)
MODEL_BRIER = Gauge(
    "model_router_model_brier_score",
    "Running Brier score (0 best, 0.25 coin flip)",
    ["model_id", "horizon"],
)
TRUST = Gauge(
    "model_router_trust_index",
    "Trust index in [0, 1] (seed 000 §2), as of the last day of event time",
    ["model_id"],
)
ALLOCATION = Gauge(
    "model_router_capital_allocation_ratio",
    "Capital-allocation multiplier from the trust index",
    ["model_id"],
)
TRACK_PNL_BPS = Gauge(
    "model_router_track_pnl_bps",
    "Paper-book PnL after costs, bps of one unit of notional per symbol",
    ["model_id"],
)
TRACK_TRADES = Gauge("model_router_track_trades", "Paper-book trades opened", ["model_id"])
STAGE = Gauge(
    "model_router_model_stage",
    "1 for the model's stage: live, canary, shadow, gated (held by the validation gate), off",
    ["model_id", "stage"],
)
REVIEWS = Counter("model_router_reviews_total", "Daily reviews run (event time)")
STAGE_CHANGES = Counter(
    "model_router_stage_changes_total",
    "Promotions and demotions by the daily review, by the stage reached",
    ["model_id", "stage"],
)
DAILY_OOS_SHARPE = Gauge(
    "model_router_daily_oos_sharpe",
    "The champion's walk-forward OOS Sharpe across windows, at the last review (seed 000)",
    ["stat"],
)
DAILY_BRIER = Gauge(
    "model_router_daily_brier_score",
    "The consensus' Brier score by the regime of its calls, at the last review (seed 000)",
    ["regime"],
)
EXPLORATION = Gauge(
    "model_router_exploration_ratio",
    "Share of the consensus' |S| carried by canaries since the last review, and its cap",
    ["kind"],
)
MODEL_ECE = Gauge(
    "model_router_model_ece_ratio",
    "Expected calibration error of the model's raw confidence, over its regimes (seed 001 §5)",
    ["model_id"],
)
RELIABILITY = Gauge(
    "model_router_reliability_ratio",
    "Reliability diagram of the consensus per confidence bucket: mean confidence or hit rate",
    ["regime", "bucket", "kind"],
)
OUTCOMES_PENDING = Gauge(
    "model_router_outcomes_pending_entries", "Predictions waiting for their horizon to elapse"
)


class Bound:
    """A labelled metric's children, bound once per label values: ``labels()`` takes a
    lock and validates its arguments on every call, which is a cost on the hot path."""

    __slots__ = ("metric", "_children")

    MAX_CHILDREN = 10_000  # bounded even if garbage symbols stream in

    def __init__(self, metric: Any) -> None:
        self.metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            if len(self._children) >= self.MAX_CHILDREN:
                self._children.clear()
            child = self._children[values] = self.metric.labels(*values)
        return child


class ModelChildren(NamedTuple):
    """One model's children of the per-model metrics, bound once."""

    calls: Counter
    waits: Counter
    errors: Counter
    latency_us: Gauge
    hit_rate: Gauge

    @classmethod
    def bind(cls, model_id: str) -> ModelChildren:
        return cls(
            MODEL_CALLS.labels(model_id),
            MODEL_WAITS.labels(model_id),
            MODEL_ERRORS.labels(model_id),
            MODEL_LATENCY_US.labels(model_id),
            MODEL_HIT_RATE.labels(model_id),
        )
