"""The vocabulary of the bus: one typed model per stream (the codec: shared/codec.py).

Every arrow of the architecture picture is a stream named here. An entry on the wire
is a flat Redis hash of strings, one field per attribute (nested values as JSON
strings), readable with ``redis-cli XRANGE``. Every entry carries ``v`` (schema
version) and ``trace_ts_ns`` (wall-clock time of the originating tick, so any hop can
compute tick-to-here latency).

Units are in the names: ``_bps`` basis points, ``_pct`` percent (2.0 means 2 %),
``_usd`` dollars, ``_ns`` nanoseconds since the epoch.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field

from shared.codec import MAX_NS as MAX_NS
from shared.codec import SCHEMA_VERSION as SCHEMA_VERSION
from shared.codec import DecodeError as DecodeError
from shared.codec import Message as Message
from shared.codec import float_reprs as float_reprs
from shared.codec import id_checker as id_checker
from shared.codec import now_ns as now_ns

# Stream names: the arrows of the architecture diagram.
MD_RAW = "md.raw"
MD_TICKS = "md.ticks"
FEATURES = "features"
SIGNALS = "signals"
ORDERS = "orders"
FILLS = "fills"
POSITIONS = "positions"
REJECTIONS = "rejections"
ROUTER_SWITCHES = "router.switches"
RISK_DECISIONS = "risk.decisions"
EVENTS = "events"
DLQ = "dlq"
PARAM_PROPOSALS = "param.proposals"
# Each producer's watermarks: ``wm.<service>`` (``watermark_stream``), read by the
# services that merge its outputs in event-time order (shared/merge.py).
WM_PREFIX = "wm."

# Pub/sub channels.
PARAM_RELOAD = "param.reload"
PARAM_UPDATED = "param.updated"
PARAM_REJECTED = "param.rejected"
PARAM_APPLIED = "param.applied"
TRADING_CONTROL = "trading.control"

Regime = Literal["TREND", "RANGE", "PANIC", "ILLIQUID"]
Side = Literal["buy", "sell"]


class Tick(Message):
    """Level-1 quote (stream ``md.ticks``)."""

    STREAM: ClassVar[str] = MD_TICKS
    symbol: str = Field(min_length=1, max_length=64)
    ts_ns: int = Field(gt=0, le=MAX_NS)
    bid: float = Field(gt=0)
    ask: float = Field(gt=0)
    bid_size: float = Field(ge=0)
    ask_size: float = Field(ge=0)
    last: float | None = Field(default=None, gt=0)
    volume: float | None = Field(default=None, ge=0)
    # A bar's open, high and low (its close is the mid); None for quotes.
    open: float | None = Field(default=None, gt=0)
    high: float | None = Field(default=None, gt=0)
    low: float | None = Field(default=None, gt=0)
    venue: str = "synthetic"
    # Comma-separated data-quality flags of this quote ("" when clean), as on Features.
    quality: str = ""
    # The aggregated print since the symbol's previous quote (docs/feature_bus.md
    # "Prints"): None when the source gives no prints (omitted on the wire, so entries
    # of sources without prints are unchanged); qty 0 = no trade in the interval.
    trade_qty: float | None = Field(default=None, ge=0)
    trade_side: int | None = Field(default=None, ge=-1, le=1)  # +1 buyer-, -1 seller-initiated
    trade_price: float | None = Field(default=None, gt=0)
    trade_count: int | None = Field(default=None, ge=0)


class RawQuote(Message):
    """An external quote before any check (stream ``md.raw``, consumed by feature_bus).

    Deliberately permissive (NaN, negatives, crossed books pass decoding) so that
    feature_bus's quality gate, not the decoder, names what is wrong with it.
    """

    model_config = ConfigDict(extra="ignore", allow_inf_nan=True)

    STREAM: ClassVar[str] = MD_RAW
    symbol: str = Field(min_length=1, max_length=64)
    ts_ns: int = Field(ge=-MAX_NS, le=MAX_NS)  # int64: the gate names <= 0, not the decoder
    bid: float
    ask: float
    bid_size: float = 0.0
    ask_size: float = 0.0
    last: float | None = None
    volume: float | None = None
    # A bar's open, high and low (its close is the mid of bid and ask); None for quotes.
    open: float | None = None
    high: float | None = None
    low: float | None = None
    source: str = "replay"  # kind of source: replay, binance, synthetic (a metrics label)
    session: str = ""  # one replay run or one connection; per-symbol state is per session
    recv_ts_ns: int = Field(default=0, ge=0, le=MAX_NS)  # 0 = historic data, no staleness
    line: int = 0  # line (CSV) or row (Parquet) number in a replayed file
    # The aggregated print since the previous quote (as on Tick): None = no prints from
    # this source; the pipeline carries a well-formed one and flags a bad one.
    trade_qty: float | None = None
    trade_side: int = 0
    trade_price: float | None = None
    trade_count: int = 0


class Features(Message):
    """Per-tick features of one symbol (stream ``features``)."""

    STREAM: ClassVar[str] = FEATURES
    symbol: str = Field(min_length=1, max_length=64)
    ts_ns: int = Field(gt=0, le=MAX_NS)
    mid: float = Field(gt=0)
    spread_bps: float
    regime: Regime
    features_hash: str
    bid: float = 0.0
    ask: float = 0.0
    bid_size: float = 0.0
    ask_size: float = 0.0
    book_pressure: float = 0.0
    ema_short: float = 0.0
    ema_long: float = 0.0
    return_bps: float = 0.0
    volatility_pct: float = 0.0
    adx: float = 0.0
    volume_ratio: float = 1.0
    trend_bps: float = 0.0
    plus_di: float = 0.0
    minus_di: float = 0.0
    source: str = ""
    # Comma-separated data-quality flags ("" when clean), e.g. "stale,gap".
    quality: str = ""
    # Order flow of the prints (docs/feature_bus.md "Prints"): None while the symbol's
    # source has given no print, read as 0. Annotated ``float``, not ``float | None``, on
    # purpose: the codec's flat plan (all floats: the fast encoding of this hot stream)
    # serves every message with prints, and a message without them (None) takes the
    # field-by-field path, which omits None, so features of sources without prints keep
    # their wire bytes. pydantic does not validate defaults; a given value must be a float.
    # flow_imbalance is in [-1, 1] and trade_rate_per_s >= 0 by construction (features.py).
    flow_imbalance: float = Field(default=None)  # type: ignore[assignment]
    trade_rate_per_s: float = Field(default=None)  # type: ignore[assignment]
    sweep_bps: float = Field(default=None)  # type: ignore[assignment]


# A signal's horizon: ``<int><ms|s|m|h|d>``, e.g. ``250ms``, ``30s``, ``1m``, ``4h``.
HORIZON_PATTERN = r"^(\d+)(ms|s|m|h|d)$"
_HORIZON = re.compile(HORIZON_PATTERN)
_HORIZON_UNIT_NS = {
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3_600 * 10**9,
    "d": 86_400 * 10**9,
}


def horizon_ns(horizon: str) -> int:
    """'250ms' / '30s' / '1m' / '4h' / '1d' -> nanoseconds (ValueError when malformed)."""
    m = _HORIZON.match(horizon)
    if m is None:
        raise ValueError(f"bad horizon {horizon!r}: expected <int><ms|s|m|h|d>, e.g. 1m")
    return int(m.group(1)) * _HORIZON_UNIT_NS[m.group(2)]


class Signal(Message):
    """One model's opinion on one symbol and horizon (stream ``signals``)."""

    STREAM: ClassVar[str] = SIGNALS
    symbol: str
    ts_ns: int = Field(gt=0, le=MAX_NS)
    model_id: str
    horizon: str
    edge_bps: float
    confidence: float = Field(ge=0, le=1)
    shadow: bool = False
    regime: Regime | None = None
    mid: float | None = Field(default=None, gt=0)
    features_hash: str = ""
    consensus_score: float | None = None
    # model_id -> {"edge_bps": .., "confidence": .., "weight": ..}: telemetry's engine_votes.
    votes: dict[str, Any] | None = None
    # The model carrying the largest share of the consensus score of this symbol.
    leading_model: str | None = None
    # The consensus' confidence before calibration (``confidence`` is the calibrated
    # one once the regime's calibrator has enough outcomes: docs/calibration.md).
    raw_confidence: float | None = Field(default=None, ge=0, le=1)
    # Split-conformal interval of the consensus edge (seed 002; docs/conformal.md), bps:
    # None until the horizon has enough resolved calls.
    edge_low_bps: float | None = None
    edge_high_bps: float | None = None


class Order(Message):
    """A sized order from risk to execution (stream ``orders``)."""

    STREAM: ClassVar[str] = ORDERS
    order_id: str = Field(min_length=1)
    symbol: str
    ts_ns: int = Field(gt=0, le=MAX_NS)
    side: Side
    qty: float = Field(gt=0)
    position_size_usd: float
    edge_blended_bps: float
    var_pct: float = Field(ge=0)
    decision_price: float = Field(gt=0)
    order_type: Literal["market", "limit", "post_only", "twap", "pov", "iceberg"] = "market"
    limit_price: float | None = Field(default=None, gt=0)
    reduce_only: bool = False
    reason: str = "signal"


class Fill(Message):
    """A (possibly partial) execution of an order (stream ``fills``)."""

    STREAM: ClassVar[str] = FILLS
    fill_id: str
    order_id: str
    symbol: str
    ts_ns: int = Field(gt=0, le=MAX_NS)
    side: Side
    qty: float = Field(gt=0)
    price: float = Field(gt=0)
    fee: float  # USD; negative is a rebate
    slippage_bps: float
    # Seed 001 §6: "full" on the fill that completes its order, else "partial".
    fill_type: Literal["full", "partial"] = "partial"
    # Funding the fill paid on the quantity it closed, for the time held (USD, seed
    # 003 §4: rate_bps * hours / 8); 0 on an opening fill.
    funding_usd: float = 0.0
    liquidity: Literal["maker", "taker"] = "taker"
    venue: str = "paper"
    # Feedback for telemetry and model training (execution, issue 7); all optional.
    fill_seq: int = Field(default=1, ge=1)  # 1, 2, ... per order; fill_id = hash(order_id, seq)
    strategy: str = "market"
    decision_price: float | None = Field(default=None, gt=0)
    quote_ts_ns: int | None = Field(default=None, ge=0)  # the quote priced on (<= ts_ns)
    mid: float | None = Field(default=None, gt=0)
    half_spread_bps: float | None = None
    impact_bps: float | None = None
    fee_bps: float | None = None
    remaining_qty: float | None = Field(default=None, ge=0)  # of the order, after this fill
    time_to_fill_ms: float | None = None  # fill ts_ns - order ts_ns (market time)


class Rejection(Message):
    """An order execution refused to work (stream ``rejections``)."""

    STREAM: ClassVar[str] = REJECTIONS
    order_id: str
    symbol: str
    ts_ns: int = Field(gt=0, le=MAX_NS)
    reason: str
    # Optional detail (execution, issue 7): a cancel after partial fills says how much of
    # the order was left working (qty) and how much had filled, so risk can clear it.
    side: Side | None = None
    qty: float | None = Field(default=None, ge=0)
    filled_qty: float | None = Field(default=None, ge=0)
    strategy: str | None = None
    # Seed 001 §6's fill type of the order as it leaves: partial (some filled, the rest
    # cancelled), expired (nothing filled in order_timeout_ms) or none (refused).
    fill_type: Literal["full", "partial", "expired", "none"] | None = None


class Position(Message):
    """Snapshot of one symbol's position after a fill or mark (stream ``positions``)."""

    STREAM: ClassVar[str] = POSITIONS
    symbol: str
    ts_ns: int = Field(gt=0, le=MAX_NS)
    qty: float
    avg_price: float = Field(ge=0)
    mark: float = Field(ge=0)
    position_usd: float
    realized_pnl_usd: float
    unrealized_pnl_usd: float
    fees_usd: float
    total_pnl_usd: float = 0.0
    funding_usd: float = 0.0  # paid for the time positions were held (seed 003 §4)
    # Account totals over every symbol at the same instant (execution, issue 7).
    account_pnl_usd: float | None = None
    daily_pnl_usd: float | None = None  # since 00:00 UTC
    equity_usd: float | None = None


class RouterSwitch(Message):
    """The leading model of a symbol changed (stream ``router.switches``)."""

    STREAM: ClassVar[str] = ROUTER_SWITCHES
    symbol: str
    ts_ns: int = Field(gt=0, le=MAX_NS)
    from_model: str
    to_model: str
    reason: str


class RiskDecision(Message):
    """Every sizing decision, order or not (stream ``risk.decisions``)."""

    STREAM: ClassVar[str] = RISK_DECISIONS
    symbol: str
    ts_ns: int = Field(gt=0, le=MAX_NS)
    # "breaker": a breaker tripped or lifted (symbol "portfolio", reason
    # "breaker:<name> <value> -> <level>" or "breaker_lifted:<name> (<level>)").
    action: Literal["order", "reject", "halt", "breaker"]
    reason: str
    trading_state: Literal["ACTIVE", "REDUCING", "HALTED"]
    edge_blended_bps: float = 0.0
    position_size_usd: float = 0.0
    var_pct: float = 0.0
    order_id: str = ""
    # Optional detail (risk_harmoniser): blend uncertainty, modelled costs, and the
    # portfolio VaR (percent of equity) the decision leads to.
    uncertainty_bps: float = 0.0
    # seed 001 §5's level of the signal's (calibrated) confidence: VERY_LOW .. VERY_HIGH
    # the dual-mode book of an order (seed 002): "scalp", "runner", "" without
    book: str = ""
    confidence_level: str = ""
    cost_bps: float = 0.0
    portfolio_var_pct: float = 0.0


class DeadLetter(Message):
    """An entry a service could not process (stream ``dlq``)."""

    STREAM: ClassVar[str] = DLQ
    source_stream: str
    entry_id: str
    service: str
    reason: str
    ts_ns: int = Field(default_factory=now_ns)
    # The raw fields of the bad entry, as JSON, so nothing is lost.
    payload: str = ""


class Event(Message):
    """One standard trade event (stream ``events``; seed 003 §10 as quoted in issue 8).

    Written by telemetry for every fill, with the decision context of its order:
    ``engine_votes`` (model_id -> vote), ``consensus_score``, ``expected_edge_bps``,
    ``regime`` and ``features_hash`` of the signal the order came from. The issue's
    ``timestamp`` is ``ts_ns`` (plus ``timestamp`` as ISO-8601 for people) and its
    ``realized_pnl`` is ``realized_pnl_usd``: empty until the fill that closes the trade
    (position back to flat or through zero), which carries the trade's realized PnL
    before fees. ``costs_bps`` = fee + slippage of this fill, in bps of its notional.
    """

    STREAM: ClassVar[str] = EVENTS
    symbol: str
    ts_ns: int = Field(gt=0)
    timestamp: str = ""
    action: str  # buy / sell (the fill's side); "breaker" for a breaker's trip or lift
    size_usd: float
    price: float = Field(ge=0)  # 0 on a breaker event
    expected_edge_bps: float = 0.0
    consensus_score: float | None = None
    engine_votes: dict[str, Any] | None = None
    regime: str = ""
    features_hash: str = ""
    costs_bps: float = 0.0
    realized_pnl_usd: float | None = None
    trade_id: str = ""  # order_id of the order that opened the trade
    order_id: str = ""
    fill_id: str = ""
    venue: str = ""
    reason: str = ""  # a breaker event's reason (risk.decisions)


class ConfigProposal(Message):
    """A config version proposed by a service's own review (stream ``param.proposals``):
    model_router's daily review (validation results, promotions). The proposer has
    applied it at ``ts_ns`` of event time; parameter_server validates and stores it as
    a version with ``source`` (auditable, reversible with a rollback)."""

    STREAM: ClassVar[str] = PARAM_PROPOSALS
    component: str = Field(min_length=1, max_length=64)
    ts_ns: int = Field(gt=0, le=MAX_NS)
    source: str = Field(min_length=1, max_length=512)
    config: dict[str, Any]
    report: dict[str, Any] | None = None


class Watermark(Message):
    """A producer's output is complete through ``wm_ns`` in event time (stream
    ``wm.<producer>``); ``wall_ns`` is when it said so (liveness only)."""

    STREAM: ClassVar[str] = ""  # one stream per producer: watermark_stream(producer)
    producer: str
    wm_ns: int = Field(ge=0, le=MAX_NS)
    wall_ns: int = Field(default=0, ge=0, le=MAX_NS)


def watermark_stream(producer: str) -> str:
    return WM_PREFIX + producer


# stream name -> message class: how the runtime decodes what it reads.
STREAMS: dict[str, type[Message]] = {
    cls.STREAM: cls
    for cls in (
        RawQuote,
        Tick,
        Features,
        Signal,
        Order,
        Fill,
        Rejection,
        Position,
        RouterSwitch,
        RiskDecision,
        DeadLetter,
        Event,
        ConfigProposal,
    )
}


def decode(stream: str, fields: dict[str, str]) -> Message:
    """Decode an entry of a known stream; DecodeError names what is wrong."""
    cls = STREAMS.get(stream)
    if cls is None and stream.startswith(WM_PREFIX):
        cls = Watermark
    if cls is None:
        raise DecodeError(f"unknown stream {stream!r}")
    return cls.from_fields(fields)
