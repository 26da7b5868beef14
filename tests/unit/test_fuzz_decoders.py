"""Hostile stream entries: whatever lands on a stream, decoding it raises DecodeError or
gives a message that re-encodes to itself. Nothing else may escape, or a bad entry
would be dead-lettered as a "decoder failed" bug instead of with a reason."""

from __future__ import annotations

import math
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.messages import STREAMS, DecodeError, Message, decode

# Recent, so quotes are fresh and orders get filled rather than refused as stale.
NOW = str(time.time_ns())

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# One valid entry per stream, as Redis returns it (all strings): the seeds to mutate.
VALID: dict[str, dict[str, str]] = {
    "md.raw": {
        "symbol": "BTC-USD",
        "ts_ns": NOW,
        "bid": "100.0",
        "ask": "100.1",
        "bid_size": "1",
        "ask_size": "2",
    },
    "md.ticks": {
        "symbol": "BTC-USD",
        "ts_ns": NOW,
        "bid": "100.0",
        "ask": "100.1",
        "bid_size": "1",
        "ask_size": "2",
    },
    "features": {
        "symbol": "BTC-USD",
        "ts_ns": NOW,
        "mid": "100.05",
        "spread_bps": "10",
        "regime": "RANGE",
        "features_hash": "abc",
    },
    "signals": {
        "symbol": "BTC-USD",
        "ts_ns": NOW,
        "model_id": "m",
        "horizon": "1m",
        "edge_bps": "25",
        "confidence": "0.5",
        "shadow": "0",
        "votes": '{"m": {"edge_bps": 2.5}}',
    },
    "orders": {
        "order_id": "o1",
        "symbol": "BTC-USD",
        "ts_ns": NOW,
        "side": "buy",
        "qty": "1",
        "position_size_usd": "100",
        "edge_blended_bps": "3",
        "var_pct": "0.1",
        "decision_price": "100",
    },
    "fills": {
        "fill_id": "f1",
        "order_id": "o1",
        "symbol": "BTC-USD",
        "ts_ns": NOW,
        "side": "sell",
        "qty": "1",
        "price": "100",
        "fee": "0.02",
        "slippage_bps": "0.5",
    },
    "rejections": {
        "order_id": "o1",
        "symbol": "BTC-USD",
        "ts_ns": NOW,
        "reason": "no_quote",
    },
    "positions": {
        "symbol": "BTC-USD",
        "ts_ns": NOW,
        "qty": "1",
        "avg_price": "100",
        "mark": "100",
        "position_usd": "100",
        "realized_pnl_usd": "0",
        "unrealized_pnl_usd": "0",
        "fees_usd": "0",
    },
    "param.proposals": {
        "component": "model_router",
        "ts_ns": NOW,
        "source": "daily:validation",
        "config": '{"rules": []}',
        "report": '{"changes": []}',
    },
    "router.switches": {
        "symbol": "BTC-USD",
        "ts_ns": NOW,
        "from_model": "a",
        "to_model": "b",
        "reason": "score",
    },
    "risk.decisions": {
        "symbol": "BTC-USD",
        "ts_ns": NOW,
        "action": "reject",
        "reason": "edge_below_threshold",
        "trading_state": "ACTIVE",
    },
    "events": {
        "symbol": "BTC-USD",
        "ts_ns": NOW,
        "action": "buy",
        "size_usd": "100",
        "price": "100",
        "engine_votes": '{"m": {"edge_bps": 2.5}}',
    },
    "dlq": {
        "source_stream": "orders",
        "entry_id": "1-0",
        "service": "execution",
        "reason": "invalid",
    },
}

# Values that break naive parsers: numbers at the edges, non-numbers, JSON of the
# wrong shape, control characters, huge and empty strings.
NASTY = st.sampled_from(
    [
        "",
        " ",
        "0",
        "-0",
        "-1",
        "1e308",
        "-1e308",
        "1e309",
        "5e-324",
        "nan",
        "NaN",
        "inf",
        "-inf",
        "Infinity",
        "9" * 30,
        "9" * 5000,
        "1" + "0" * 400,
        "-" + "9" * 400,
        "18446744073709551616",
        "9223372036854775808",
        "0x10",
        "1_000",
        "true",
        "null",
        "None",
        "[]",
        "{}",
        '{"a": [1, {"b": null}]}',
        "[1e999]",
        '"str"',
        "\x00",
        "\ud7ff\ue000",
        "buy",
        "sell",
        "TREND",
        "HALTED",
        "order",
        "x" * 100_000,
    ]
)
numeric_text = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers().map(str),
)
value_text = st.one_of(NASTY, numeric_text, st.text(max_size=50))
field_name = st.one_of(
    st.sampled_from(sorted({k for cls in STREAMS.values() for k in cls.model_fields})),
    st.text(max_size=20),
)


@st.composite
def mutated_entry(draw: st.DrawFn) -> tuple[str, dict[str, str]]:
    """A valid entry of some stream with fields replaced, dropped or added."""
    stream = draw(st.sampled_from(sorted(VALID)))
    fields = dict(VALID[stream])
    for _ in range(draw(st.integers(0, 4))):
        action = draw(st.sampled_from(["replace", "drop", "add"]))
        if action == "drop" and fields:
            fields.pop(draw(st.sampled_from(sorted(fields))))
        else:
            key = draw(st.sampled_from(sorted(fields))) if action == "replace" and fields else None
            fields[key or draw(field_name)] = draw(value_text)
    return stream, fields


arbitrary_entry = st.tuples(
    st.one_of(st.sampled_from(sorted(STREAMS)), st.text(max_size=10)),
    st.dictionaries(field_name, value_text, max_size=12),
)


def wire(msg: Message) -> dict[str, str]:
    """Encode as the bus does, and read back as Redis returns it (strings)."""
    return {k: repr(v) if isinstance(v, float) else str(v) for k, v in msg.to_fields().items()}


def check(stream: str, fields: dict[str, str]) -> None:
    try:
        msg = decode(stream, fields)
    except DecodeError as exc:
        assert str(exc), "a DecodeError must carry a reason for the dlq"
        return
    # Accepted: it must be something the runtime can write again unchanged. Only md.raw
    # lets NaN and infinities through (feature_bus's quality gate names them).
    if not msg.model_config.get("allow_inf_nan"):
        for name, val in msg.__dict__.items():
            assert not (isinstance(val, float) and not math.isfinite(val)), (name, val)
    assert wire(decode(stream, wire(msg))) == wire(msg)


def test_every_stream_has_a_valid_seed_that_decodes() -> None:
    assert set(VALID) == set(STREAMS)
    for stream, fields in VALID.items():
        assert isinstance(decode(stream, fields), STREAMS[stream])


@FUZZ
@given(mutated_entry())
def test_mutated_entries_decode_or_raise_decode_error(case: tuple[str, dict[str, str]]) -> None:
    check(*case)


@FUZZ
@given(arbitrary_entry)
def test_arbitrary_entries_decode_or_raise_decode_error(case: tuple[str, dict[str, str]]) -> None:
    check(*case)


@FUZZ
@given(
    st.sampled_from(sorted(STREAMS)),
    st.dictionaries(st.binary(max_size=10), st.binary(max_size=40), max_size=8),
)
def test_raw_bytes_fields_decode_or_raise_decode_error(
    stream: str, raw: dict[bytes, bytes]
) -> None:
    """A client without decode_responses hands over bytes; undecodable UTF-8 included."""
    fields: dict[Any, Any] = {**VALID[stream], **raw}
    check(stream, fields)


# ---- what a decodable but extreme entry does to the services' handlers ---------------


def consumers() -> list[Any]:
    from services import SERVICE_NAMES, service_class

    return [service_class(name)() for name in SERVICE_NAMES if service_class(name).inputs]


def run_batch(svc: Any, items: list[tuple[str, dict[str, str], Message]]) -> Any:
    """One batch through the service's own ``handle`` (its event-time merge, timers and
    watermarks included), every upstream's watermark at the end of time, so all of it
    is released."""
    from shared.bus import Entry, Outbox
    from shared.messages import MAX_NS, Watermark, watermark_stream

    entries = [Entry(s, f"1-{i}", f, m) for i, (s, f, m) in enumerate(items)]
    for j, producer in enumerate(sorted(set(svc.upstreams.values()))):
        wm = Watermark(producer=producer, wm_ns=MAX_NS)
        entries.append(Entry(watermark_stream(producer), f"9-{j}", {}, wm))
    out = Outbox()
    svc.handle(entries, out, [])
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated_entry(), min_size=1, max_size=8))
def test_no_decodable_entry_makes_a_handler_raise(cases: list[tuple[str, dict[str, str]]]) -> None:
    """A handler that raises leaves its whole batch pending until the entry is
    dead-lettered as poison: good entries wait behind it. Extreme but valid values
    (1e308 prices, 2**70 timestamps) must be handled or refused, not crash the batch."""
    warm_up = [("md.ticks", VALID["md.ticks"]), ("signals", VALID["signals"])]
    for svc in consumers():
        items = []
        for stream, fields in warm_up + cases:
            if stream not in svc.inputs:
                continue
            try:
                items.append((stream, fields, decode(stream, fields)))
            except DecodeError:
                continue
        out = run_batch(svc, items)
        for stream, msg in out.messages:
            assert decode(stream, wire(msg)) == msg


EXTREMES = ("1e308", "-1e308", "5e-324", "-5e-324", "0", "1" + "0" * 400, "-" + "1" * 30)

# Found by this test earlier (a 1e308 fill in telemetry, a "1e400" s horizon in risk)
# and fixed: out-of-range fills go to the dlq, absurd horizons read as unparseable.
# Any failure fails here.
KNOWN_HANDLER_FAILURES: set[tuple[str, str, str, str]] = set()


def test_every_extreme_value_in_every_field_is_handled_or_refused() -> None:
    """Exhaustive, not sampled: each seed with one field set to an extreme number."""
    failures: dict[tuple[str, str, str, str], str] = {}
    for stream, seed in sorted(VALID.items()):
        for key in sorted(set(seed) | {"trace_ts_ns"}):
            for value in EXTREMES:
                fields = {**seed, key: value}
                try:
                    msg = decode(stream, fields)
                except DecodeError:
                    continue
                warm = [("md.ticks", VALID["md.ticks"]), ("signals", VALID["signals"])]
                for svc in consumers():
                    try:
                        items = [(s, f, decode(s, f)) for s, f in warm if s in svc.inputs]
                        if stream in svc.inputs:
                            items.append((stream, fields, msg))
                        run_batch(svc, items)
                    except Exception as exc:
                        failures[(svc.name, stream, key, value)] = repr(exc)[:200]
    new = {k: v for k, v in failures.items() if k not in KNOWN_HANDLER_FAILURES}
    assert not new, "\n".join(f"{k}: {v}" for k, v in new.items())


def test_times_beyond_int64_are_refused_with_a_reason() -> None:
    for key in ("ts_ns", "trace_ts_ns"):
        try:
            decode("fills", {**VALID["fills"], key: str(2**63)})
        except DecodeError as exc:
            assert key in str(exc)
        else:
            raise AssertionError(f"{key}=2**63 accepted")


def test_an_out_of_range_fill_goes_to_telemetrys_dlq_with_a_reason() -> None:
    from services import service_class

    svc = service_class("telemetry")()
    fields = {**VALID["fills"], "qty": "1e308"}
    out = run_batch(svc, [("fills", fields, decode("fills", fields))])
    [dead] = out.dead
    assert dead.source_stream == "fills" and "out of range" in dead.reason
    assert not [m for s, m in out.messages if s == "events"]
