"""The one wire encoding: round trips, readable fields, and reasons for bad entries."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.messages import STREAMS, DecodeError, Order, Signal, Tick, decode

finite = st.floats(allow_nan=False, allow_infinity=False, min_value=1e-6, max_value=1e9)


def wire(fields: dict[str, object]) -> dict[str, str]:
    """What Redis gives back: every value a string."""
    return {k: repr(v) if isinstance(v, float) else str(v) for k, v in fields.items()}


@given(
    bid=finite, spread=finite, size=st.floats(min_value=0, max_value=1e9), ts=st.integers(1, 2**62)
)
def test_tick_round_trips_through_redis_fields(
    bid: float, spread: float, size: float, ts: int
) -> None:
    tick = Tick(
        trace_ts_ns=ts,
        symbol="BTC-USD",
        ts_ns=ts,
        bid=bid,
        ask=bid + spread,
        bid_size=size,
        ask_size=size,
    )
    assert Tick.from_fields(wire(tick.to_fields())) == tick


def test_every_entry_carries_version_and_trace_time() -> None:
    for cls in STREAMS.values():
        assert {"v", "trace_ts_ns"} <= set(cls.model_fields), cls


def test_nested_values_are_json_and_bools_are_0_1() -> None:
    sig = Signal(
        symbol="X",
        ts_ns=1,
        model_id="consensus",
        horizon="1m",
        edge_bps=2.5,
        confidence=0.5,
        shadow=True,
        votes={"a": {"edge_bps": 1.0}},
    )
    fields = sig.to_fields()
    assert fields["shadow"] == 1
    assert fields["votes"] == '{"a":{"edge_bps":1.0}}'
    assert "regime" not in fields  # None is omitted, not written as "None"
    assert Signal.from_fields(wire(fields)) == sig


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"symbol": "X"}, "ts_ns: Field required"),
        (
            {
                "symbol": "X",
                "ts_ns": "1",
                "bid": "nan",
                "ask": "1",
                "bid_size": "1",
                "ask_size": "1",
            },
            "bid: Input should be a finite number",
        ),
        (
            {
                "symbol": "X",
                "ts_ns": "1",
                "bid": "-1",
                "ask": "1",
                "bid_size": "1",
                "ask_size": "1",
            },
            "bid: Input should be greater than 0",
        ),
    ],
)
def test_bad_ticks_are_refused_with_a_reason(fields: dict[str, str], reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode("md.ticks", fields)


def test_bad_json_field_names_the_field() -> None:
    with pytest.raises(DecodeError, match="votes"):
        Signal.from_fields(
            {
                "symbol": "X",
                "ts_ns": "1",
                "model_id": "m",
                "horizon": "1m",
                "edge_bps": "1",
                "confidence": "0.5",
                "votes": "{not json",
            }
        )


def test_unknown_stream_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="unknown stream"):
        decode("nope", {"a": "b"})


def test_order_side_must_be_buy_or_sell() -> None:
    with pytest.raises(DecodeError, match="side"):
        Order.from_fields(
            {
                "order_id": "1",
                "symbol": "X",
                "ts_ns": "1",
                "side": "up",
                "qty": "1",
                "position_size_usd": "1",
                "edge_blended_bps": "1",
                "var_pct": "0",
                "decision_price": "1",
            }
        )


@given(
    st.one_of(st.integers(-(2**64), 2**64), st.just(True), st.just(1.0)),
    st.text(max_size=70),
    st.one_of(st.integers(-(2**64), 2**64), st.just(False)),
)
def test_id_checker_says_what_validation_says(
    trace_ts_ns: object, symbol: str, ts_ns: object
) -> None:
    from pydantic import ValidationError

    from shared.messages import Features, Tick, id_checker

    valid = id_checker(Tick, Features)
    base = {"bid": 1.0, "ask": 1.0, "bid_size": 0.0, "ask_size": 0.0}
    try:
        Tick.checked({**base, "trace_ts_ns": trace_ts_ns, "symbol": symbol, "ts_ns": ts_ns})
        ok = True
    except ValidationError:
        ok = False
    exact = type(trace_ts_ns) is int and type(ts_ns) is int  # trusted wants exact types
    assert valid(trace_ts_ns, symbol, ts_ns) == (ok and exact)  # type: ignore[arg-type]
