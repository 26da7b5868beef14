"""The vocabulary of the bus: one typed model per stream, and the only encode/decode path.

Every arrow of the architecture picture is a stream named here. An entry on the wire
is a flat Redis hash of strings, one field per attribute (nested values as JSON
strings), readable with ``redis-cli XRANGE``. Every entry carries ``v`` (schema
version) and ``trace_ts_ns`` (wall-clock time of the originating tick, so any hop can
compute tick-to-here latency).

Units are in the names: ``_bps`` basis points, ``_pct`` percent (2.0 means 2 %),
``_usd`` dollars, ``_ns`` nanoseconds since the epoch.
"""

from __future__ import annotations

import copy
import math
import re
import time
from collections.abc import Callable
from functools import partial
from operator import itemgetter
from typing import Any, ClassVar, Literal, Self, get_args, get_origin

import annotated_types
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
# Each producer's watermarks: ``wm.<service>`` (``watermark_stream``), read by the
# services that merge its outputs in event-time order (shared/merge.py).
WM_PREFIX = "wm."

# Pub/sub channels.
PARAM_RELOAD = "param.reload"
PARAM_UPDATED = "param.updated"
PARAM_REJECTED = "param.rejected"
PARAM_APPLIED = "param.applied"
TRADING_CONTROL = "trading.control"

SCHEMA_VERSION = 1

# Nanosecond times fit in a signed 64-bit integer (until 2262): a larger one is hostile
# input, and would overflow the float maths of latency metrics.
MAX_NS = 2**63 - 1

Regime = Literal["TREND", "RANGE", "PANIC", "ILLIQUID"]
Side = Literal["buy", "sell"]


class DecodeError(ValueError):
    """An entry that cannot become its stream's message; the text is the DLQ reason."""


def now_ns() -> int:
    return time.time_ns()


class Message(BaseModel):
    """Base of every stream entry. Subclasses set ``STREAM``."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, validate_assignment=False)

    STREAM: ClassVar[str] = ""
    # Fields whose wire form is a JSON string (dicts and lists), computed per class.
    _json_fields: ClassVar[frozenset[str]] = frozenset()
    # Field name -> default (None when required), in field order; per class.
    _defaults: ClassVar[dict[str, Any]] = {}
    _factories: ClassVar[dict[str, Callable[[], Any]]] = {}
    _plan: ClassVar[_FlatPlan | None] = None

    v: int = SCHEMA_VERSION
    trace_ts_ns: int = Field(default=0, ge=0, le=MAX_NS)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        json_fields = set()
        for name, info in cls.model_fields.items():
            ann = info.annotation
            origin = get_origin(ann)
            candidates = (
                get_args(ann) if origin is not None and origin not in (dict, list) else (ann,)
            )
            for c in candidates:
                if c in (dict, list) or get_origin(c) in (dict, list):
                    json_fields.add(name)
        cls._json_fields = frozenset(json_fields)
        # For ``trusted``: every field in order with its default (a placeholder when
        # required: the caller gives it), and the fields whose default is made per message.
        defaults: dict[str, Any] = {}
        factories: dict[str, Callable[[], Any]] = {}
        for name, info in cls.model_fields.items():
            defaults[name] = None
            if info.default_factory is not None:
                factories[name] = info.default_factory  # type: ignore[assignment]
            elif not info.is_required():
                default = info.default
                defaults[name] = default
                if type(default) not in _IMMUTABLE:  # as pydantic: a copy per message
                    factories[name] = partial(copy.deepcopy, default)
        cls._defaults = defaults
        cls._factories = factories
        cls._plan = _FlatPlan.of(cls.model_fields)

    def to_fields(self) -> dict[str, str | int | float]:
        """Flat Redis fields: None is omitted, bools are 0/1, dicts and lists are JSON.

        Floats come out as ``repr(value)``: the very text the Redis client writes for a
        float, so the wire is unchanged, but made for all of a message's floats in one
        orjson call (repr costs about 0.3 us per float, and so does hiredis's packing
        of a float, against 0.08 us for a str).
        """
        plan = self._plan
        if plan is not None:
            out = plan.encode(self.__dict__)
            if out is not None:
                return out
        out = {}
        float_keys: list[str] = []
        float_values: list[float] = []
        for key, val in self.__dict__.items():
            kind = val.__class__
            if kind is float:
                float_keys.append(key)
                float_values.append(val)
                out[key] = val  # keeps the field order; replaced by its text below
            elif kind is str or kind is int:
                out[key] = val
            elif val is None:
                continue
            elif isinstance(val, bool):
                out[key] = 1 if val else 0
            elif isinstance(val, (dict, list, tuple)):
                out[key] = orjson.dumps(val).decode()
            else:
                out[key] = val
        if float_values:
            out.update(zip(float_keys, float_reprs(float_values), strict=True))
        return out

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> Self:
        """Decode an entry read from Redis; raise DecodeError with a readable reason."""
        data: dict[str, Any]
        if cls._json_fields:
            data = dict(fields)
            for key in cls._json_fields:
                raw = data.get(key)
                if isinstance(raw, (str, bytes)):
                    try:
                        data[key] = orjson.loads(raw)
                    except orjson.JSONDecodeError as exc:
                        raise DecodeError(f"field {key!r}: not JSON ({exc})") from None
        else:
            # Validation never changes its input: no copy of a plain dict.
            data = fields if type(fields) is dict else dict(fields)
        try:
            # What model_validate does, without its Python-level wrapper.
            return cls.__pydantic_validator__.validate_python(data)  # type: ignore[no-any-return]
        except ValidationError as exc:
            raise DecodeError(_validation_reason(exc)) from None

    @classmethod
    def checked(cls, values: dict[str, Any]) -> Self:
        """``cls(**values)``, validated the same way, without the constructor's Python
        wrapper: for values this process computed but does not vouch for (raises
        pydantic's ValidationError)."""
        return cls.__pydantic_validator__.validate_python(values)  # type: ignore[no-any-return]

    @classmethod
    def int_bounds(cls, name: str) -> tuple[int, int]:
        """(lowest, highest) value the int field ``name`` accepts, inclusive, from its
        declared constraints: fast paths check these instead of copying the numbers."""
        lo, hi = -MAX_NS - 1, MAX_NS
        for c in cls.model_fields[name].metadata:
            if isinstance(c, annotated_types.Gt):
                lo = max(lo, _as_int(c.gt) + 1)
            elif isinstance(c, annotated_types.Ge):
                lo = max(lo, _as_int(c.ge))
            elif isinstance(c, annotated_types.Lt):
                hi = min(hi, _as_int(c.lt) - 1)
            elif isinstance(c, annotated_types.Le):
                hi = min(hi, _as_int(c.le))
        return lo, hi

    @classmethod
    def length_bounds(cls, name: str) -> tuple[int, int | None]:
        """(min_length, max_length or None) of the str field ``name``."""
        lo, hi = 0, None
        for c in cls.model_fields[name].metadata:
            if isinstance(c, annotated_types.MinLen):
                lo = c.min_length
            elif isinstance(c, annotated_types.MaxLen):
                hi = c.max_length
        return lo, hi

    @classmethod
    def trusted(cls, values: dict[str, Any]) -> Self:
        """A message from values this process computed and already checked, without
        validation (about 3x cheaper than the constructor).

        The caller guarantees what validation would: every required field is given,
        each value has its field's exact type (float for float fields, never int) and
        meets its constraints. Then the result equals ``cls(**values)``, field order and
        value types included (tests check it against the constructor). Never use it for
        input from outside the process: that goes through ``from_fields``.

        Given every field (``v`` included) in the model's order, ``values`` itself
        becomes the message's ``__dict__`` (no copy: the caller hands it over).
        """
        m = _new(cls)
        if len(values) == len(cls._defaults):
            fields = values
        else:
            fields = cls._defaults.copy()
            fields.update(values)
            for name, factory in cls._factories.items():
                if name not in values:
                    fields[name] = factory()
        _setattr(m, "__dict__", fields)
        _setattr(m, "__pydantic_fields_set__", set(values))
        _setattr(m, "__pydantic_extra__", None)
        _setattr(m, "__pydantic_private__", None)
        return m


class _FlatPlan:
    """``to_fields`` of a class whose fields are all plain floats, ints and strs (no
    None, bool or JSON to special-case, e.g. Features): C-level dict operations instead
    of a loop over the fields, about 0.7 us less for Features."""

    def __init__(self, model_fields: dict[str, Any]) -> None:
        self.n_fields = len(model_fields)
        self.float_names = tuple(n for n, i in model_fields.items() if i.annotation is float)
        self.other_names = tuple(n for n in model_fields if n not in self.float_names)
        self.floats_of = itemgetter(*self.float_names)
        self.others_of = itemgetter(*self.other_names)

    @staticmethod
    def of(model_fields: dict[str, Any]) -> _FlatPlan | None:
        kinds = [get_origin(i.annotation) or i.annotation for i in model_fields.values()]
        simple = all(k in (float, int, str, Literal) for k in kinds)
        if simple and kinds.count(float) >= 2 and len(kinds) - kinds.count(float) >= 2:
            return _FlatPlan(model_fields)
        return None

    def encode(self, values: dict[str, Any]) -> dict[str, str | int | float] | None:
        """The fields, or None when the values are not of the declared kinds (a message
        made with model_construct): then the caller goes field by field."""
        if len(values) != self.n_fields:
            return None
        try:
            floats = self.floats_of(values)
            others = self.others_of(values)
        except KeyError:
            return None
        if set(map(type, floats)) != _FLOAT or not _PLAIN.issuperset(map(type, others)):
            return None
        out = values.copy()
        out.update(zip(self.float_names, float_reprs(floats), strict=True))
        return out


_FLOAT = {float}
_PLAIN = {str, int}
_IMMUTABLE = (type(None), bool, int, float, str, bytes, tuple, frozenset)
_new = object.__new__
_setattr = object.__setattr__
_INF = math.inf


def _as_int(bound: Any) -> int:
    return int(bound)


def float_reprs(values: list[float] | tuple[float, ...]) -> list[str]:
    """``[repr(v) for v in values]``, about 10x faster.

    orjson writes the same shortest round-trip digits as repr and the same text for
    every finite float with 1e-4 <= |v| (tests check millions), but 1e-05 as 0.00001 and
    1e-07 as 1e-7, and NaN and infinities as null: such values (rare) take repr.
    """
    text = orjson.dumps(values).decode()
    texts = text[1:-1].split(",") if values else []
    # "e": 1e-07 or 1e+16 (only the first differs); "n": null; ".0000": 0.00001.
    if "e" in text or "n" in text or ".0000" in text:
        return [
            t if 1e-4 <= abs(v) < _INF or v == 0.0 else repr(v)
            for t, v in zip(texts, values, strict=True)
        ]
    return texts


def _validation_reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "entry"
        parts.append(f"{loc}: {err['msg']}")
    return "invalid: " + "; ".join(parts)


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
    action: Literal["order", "reject", "halt"]
    reason: str
    trading_state: Literal["ACTIVE", "REDUCING", "HALTED"]
    edge_blended_bps: float = 0.0
    position_size_usd: float = 0.0
    var_pct: float = 0.0
    order_id: str = ""
    # Optional detail (risk_harmoniser): blend uncertainty, modelled costs, and the
    # portfolio VaR (percent of equity) the decision leads to.
    uncertainty_bps: float = 0.0
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
    action: str  # buy / sell (the fill's side)
    size_usd: float
    price: float = Field(gt=0)
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


class Watermark(Message):
    """A producer's output is complete through ``wm_ns`` in event time (stream
    ``wm.<producer>``); ``wall_ns`` is when it said so (liveness only)."""

    STREAM: ClassVar[str] = ""  # one stream per producer: watermark_stream(producer)
    producer: str
    wm_ns: int = Field(ge=0, le=MAX_NS)
    wall_ns: int = Field(default=0, ge=0, le=MAX_NS)


def id_checker(*classes: type[Message]) -> Callable[[int, str, int], bool]:
    """``valid(trace_ts_ns, symbol, ts_ns)``: what validation of every one of
    ``classes`` checks of those three fields, for paths that build messages with
    ``trusted``; the limits are read from the models, so they cannot drift."""
    trace = [c.int_bounds("trace_ts_ns") for c in classes]
    ts = [c.int_bounds("ts_ns") for c in classes]
    sym = [c.length_bounds("symbol") for c in classes]
    trace_lo, trace_hi = max(b[0] for b in trace), min(b[1] for b in trace)
    ts_lo, ts_hi = max(b[0] for b in ts), min(b[1] for b in ts)
    sym_lo = max(b[0] for b in sym)
    sym_hi = min((b[1] for b in sym if b[1] is not None), default=None)
    sym_hi_ = sym_hi if sym_hi is not None else MAX_NS

    def valid(trace_ts_ns: int, symbol: str, ts_ns: int) -> bool:
        return (
            type(trace_ts_ns) is int
            and type(ts_ns) is int
            and type(symbol) is str
            and trace_lo <= trace_ts_ns <= trace_hi
            and ts_lo <= ts_ns <= ts_hi
            and sym_lo <= len(symbol) <= sym_hi_
        )

    return valid


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
