"""The fast codec paths of shared/messages.py give exactly what the plain ones give:
``to_fields`` the same fields in the same order with the same wire text, ``from_fields``
the same message or the same DecodeError, ``trusted`` the same message as the
constructor. Each reference below is the code as it was before the fast paths."""

from __future__ import annotations

import math
import random
import struct
from typing import Any

import hiredis
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.codec import _validation_reason
from shared.messages import (
    STREAMS,
    DecodeError,
    Features,
    Message,
    RawQuote,
    RiskDecision,
    Signal,
    Tick,
    float_reprs,
)
from tests.unit.test_fuzz_decoders import VALID, mutated_entry

MANY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reference_to_fields(msg: Message) -> dict[str, Any]:
    """to_fields as it was, with each float as the text the Redis client writes for it."""
    out: dict[str, Any] = {}
    for key, val in msg.__dict__.items():
        if val is None:
            continue
        if isinstance(val, bool):
            out[key] = 1 if val else 0
        elif isinstance(val, (dict, list, tuple)):
            out[key] = orjson.dumps(val).decode()
        else:
            out[key] = repr(val) if type(val) is float else val
    return out


def reference_from_fields(cls: type[Message], fields: dict[str, Any]) -> Message:
    data: dict[str, Any] = dict(fields)
    for key in cls._json_fields:
        raw = data.get(key)
        if isinstance(raw, (str, bytes)):
            try:
                data[key] = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise DecodeError(f"field {key!r}: not JSON ({exc})") from None
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise DecodeError(_validation_reason(exc)) from None


def packed(fields: dict[str, Any]) -> bytes:
    """The bytes the bus writes for these fields (hiredis packs a float as its repr)."""
    items: list[Any] = ["XADD", "s", "*"]
    for kv in fields.items():
        items.extend(kv)
    return hiredis.pack_command(tuple(items))


def assert_same_fields(msg: Message) -> None:
    """Same fields, order, values and value types; or the same error (a list holding an
    int beyond 64 bits cannot be JSON)."""
    try:
        want = reference_to_fields(msg)
    except Exception as exc:
        with pytest.raises(type(exc), match=str(exc)):
            msg.to_fields()
        return
    got = msg.to_fields()
    assert list(got.items()) == list(want.items())
    assert [type(v) for v in got.values()] == [type(v) for v in want.values()]


# ---- float_reprs ----------------------------------------------------------------------

EDGES = [
    0.0,
    -0.0,
    1e-4,
    -1e-4,
    9.999999999999999e-05,
    1.0000000000000002e-04,
    1e-5,
    1e-7,
    5e-324,
    -5e-324,
    2.2250738585072014e-308,
    1e15,
    9999999999999998.0,
    1e16,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    0.1,
    1 / 3,
    math.nan,
    math.inf,
    -math.inf,
]


def test_float_reprs_match_repr_on_the_edges() -> None:
    assert float_reprs(EDGES) == [repr(v) for v in EDGES]
    for v in EDGES:
        assert float_reprs([v]) == [repr(v)]
        assert float_reprs((1.5, v, 2.5)) == ["1.5", repr(v), "2.5"]


def test_float_reprs_match_repr_on_random_bit_patterns() -> None:
    """Every double is equally likely here: all exponents, subnormals, NaN payloads."""
    rng = random.Random(20261121)
    for _ in range(2_000):
        values = [
            struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(50)
        ]
        assert float_reprs(values) == [repr(v) for v in values]


def test_float_reprs_match_repr_on_market_like_values() -> None:
    rng = random.Random(7)
    for _ in range(2_000):
        values = [rng.random() * 10 ** rng.uniform(-9, 18) * rng.choice((-1, 1)) for _ in range(40)]
        values += [round(rng.uniform(0, 1e5), rng.randint(0, 10)) for _ in range(10)]
        assert float_reprs(values) == [repr(v) for v in values]


@MANY
@given(st.lists(st.floats(), max_size=30))
def test_float_reprs_match_repr(values: list[float]) -> None:
    assert float_reprs(values) == [repr(v) for v in values]


# ---- to_fields ------------------------------------------------------------------------

ANY_VALUE = st.one_of(
    st.floats(),
    st.integers(),
    st.booleans(),
    st.none(),
    st.text(max_size=10),
    st.dictionaries(st.text(max_size=3), st.floats(allow_nan=False), max_size=2),
    st.lists(st.integers(), max_size=2),
    st.tuples(st.integers()),
)


@MANY
@given(st.sampled_from(sorted(STREAMS)), st.data())
def test_to_fields_of_any_values_is_the_reference(stream: str, data: st.DataObject) -> None:
    """Whatever a message holds (model_construct skips validation), the fields are
    those of the plain loop: same keys, order, values and value types."""
    cls = STREAMS[stream]
    values = {name: data.draw(ANY_VALUE, label=name) for name in cls.model_fields}
    if data.draw(st.booleans(), label="drop one"):
        values.pop(data.draw(st.sampled_from(sorted(values)), label="dropped"))
    assert_same_fields(cls.model_construct(**values))


def test_to_fields_of_float_subclasses_is_the_reference() -> None:
    np = pytest.importorskip("numpy")
    msg = Features.model_construct(**{**_features_values(), "mid": np.float64(1.5)})
    assert_same_fields(msg)
    assert msg.to_fields()["mid"] is msg.mid  # as before: left to the client


finite = st.floats(allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=5e-324, allow_infinity=False)


def _features_values(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "trace_ts_ns": 5,
        "symbol": "BTC-USD",
        "ts_ns": 7,
        "mid": 100.5,
        "spread_bps": 1.25,
        "regime": "TREND",
        "features_hash": "abcdef0123456789",
    }
    base.update(kw)
    return base


@MANY
@given(
    mid=positive,
    others=st.lists(finite, min_size=18, max_size=18),
    ts=st.integers(1, 2**63 - 1),
    symbol=st.text(min_size=1, max_size=64),
    quality=st.text(max_size=20),
)
def test_features_to_fields_is_the_reference_and_round_trips(
    mid: float, others: list[float], ts: int, symbol: str, quality: str
) -> None:
    names = [n for n, i in Features.model_fields.items() if i.annotation is float and n != "mid"]
    values = _features_values(mid=mid, ts_ns=ts, symbol=symbol, quality=quality)
    values.update(zip(names, others, strict=True))
    f = Features(**values)
    assert_same_fields(f)
    wire = {k: str(v) for k, v in f.to_fields().items()}
    assert Features.from_fields(wire) == f
    assert packed(f.to_fields()) == packed(reference_to_fields(f))


def test_each_stream_encodes_as_the_reference() -> None:
    for stream, fields in VALID.items():
        assert_same_fields(STREAMS[stream].from_fields(fields))


def test_flat_plan_is_used_only_where_every_field_is_plain() -> None:
    assert Features._plan is not None and RiskDecision._plan is not None
    # None-able fields: checking for them first costs more than the loop over fields
    assert Tick._plan is None and Signal._plan is None


@MANY
@given(
    last=st.none() | st.floats(),
    volume=st.none() | st.floats(),
    venue=st.text(max_size=5),
    extra=st.none() | st.floats(),
)
def test_none_able_fields_are_dropped_as_the_reference(
    last: float | None, volume: float | None, venue: str, extra: float | None
) -> None:
    tick = Tick.model_construct(**{**VALID_TICK, "last": last, "volume": volume, "venue": venue})
    assert_same_fields(tick)
    from shared.messages import Rejection

    rej = Rejection.model_construct(
        order_id="o", symbol="X", ts_ns=1, reason="r", qty=extra, side=None, strategy=venue or None
    )
    assert_same_fields(rej)


VALID_TICK: dict[str, Any] = {
    "trace_ts_ns": 1,
    "symbol": "X",
    "ts_ns": 2,
    "bid": 1.0,
    "ask": 2.0,
    "bid_size": 0.0,
    "ask_size": 3.5,
}


# ---- from_fields ----------------------------------------------------------------------


def _outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    try:
        msg = fn(*args)
    except DecodeError as exc:
        return "refused", str(exc)
    # A default made per message (DeadLetter.ts_ns: the time now) differs run to run.
    made = {n for n, i in type(msg).model_fields.items() if i.default_factory is not None}
    values = [(k, "made" if k in made - msg.__pydantic_fields_set__ else v) for k, v in msg]
    # repr: NaN (md.raw lets it through) is not equal to itself
    return "accepted", (type(msg), repr(values), msg.__pydantic_fields_set__)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_entry())
def test_from_fields_accepts_and_refuses_as_the_reference(case: tuple[str, dict[str, str]]) -> None:
    stream, fields = case
    cls = STREAMS[stream]
    assert _outcome(cls.from_fields, fields) == _outcome(reference_from_fields, cls, fields)


def test_from_fields_does_not_change_its_input() -> None:
    fields = dict(VALID["md.ticks"])
    Tick.from_fields(fields)
    assert fields == VALID["md.ticks"]


def test_from_fields_of_a_mapping_that_is_not_a_dict() -> None:
    from collections import OrderedDict

    fields = OrderedDict(VALID["md.ticks"])
    assert Tick.from_fields(fields) == reference_from_fields(Tick, fields)


# ---- trusted --------------------------------------------------------------------------


def assert_same_message(a: Message, b: Message) -> None:
    assert type(a) is type(b)
    assert list(a.__dict__.items()) == list(b.__dict__.items())
    assert [type(v) for v in a.__dict__.values()] == [type(v) for v in b.__dict__.values()]
    assert a.__pydantic_fields_set__ == b.__pydantic_fields_set__
    assert a.__pydantic_extra__ == b.__pydantic_extra__
    assert a.__pydantic_private__ == b.__pydantic_private__
    assert a == b and a.to_fields() == b.to_fields()


@MANY
@given(
    bid=positive,
    ask=positive,
    sizes=st.tuples(finite.map(abs), finite.map(abs)),
    volume=st.none() | finite.map(abs),
    ts=st.integers(1, 2**63 - 1),
    with_quality=st.booleans(),
)
def test_trusted_tick_is_the_validated_tick(
    bid: float,
    ask: float,
    sizes: tuple[float, float],
    volume: float | None,
    ts: int,
    with_quality: bool,
) -> None:
    values: dict[str, Any] = {
        "trace_ts_ns": ts,
        "symbol": "X",
        "ts_ns": ts,
        "bid": bid,
        "ask": ask,
        "bid_size": sizes[0],
        "ask_size": sizes[1],
        "volume": volume,
    }
    if with_quality:
        values["quality"] = "stale,gap"
    assert_same_message(Tick.trusted(values), Tick(**values))


def test_trusted_fills_defaults_and_default_factories() -> None:
    from shared.messages import DeadLetter

    values = {"source_stream": "s", "entry_id": "1-0", "service": "x", "reason": "r"}
    dl = DeadLetter.trusted(values)
    assert dl.payload == "" and dl.v == 1 and dl.ts_ns > 0
    assert list(dl.__dict__) == list(DeadLetter.model_fields)
    assert dl.__pydantic_fields_set__ == set(values)


def test_trusted_raw_quote_with_every_field_is_model_construct() -> None:
    values = RawQuote.from_fields(VALID["md.raw"]).__dict__
    assert_same_message(RawQuote.trusted(dict(values)), RawQuote.model_construct(**values))


def test_trusted_with_every_field_takes_the_dict_as_is() -> None:
    values = dict(Tick.from_fields(VALID["md.ticks"]).__dict__)
    tick = Tick.trusted(values)
    assert tick.__dict__ is values
    assert_same_message(tick, Tick(**values))
