"""CPU cost of feature_bus's hot path, in process (no Redis): microseconds per tick of
each stage, and per encode/decode of the messages of the pipeline.

    python -m bench.feature_cost [--batches 100] [--repeats 5]

Stages are cumulative, as the synthetic source runs them per batch of 500 quotes:
generate the quotes, handle them (quality gate, features, messages), encode the
outputs (``to_fields``, and the bus's flattening into EVALSHA arguments), pack the
command as the Redis client does (hiredis). CPU time (``time.process_time``), the
minimum over repeats: on a shared machine the minimum is the least disturbed run.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable
from typing import Any

import hiredis

from services.feature_bus.config import FeatureBusConfig
from services.feature_bus.service import FeatureBus
from shared.config import load_file
from shared.messages import Features, Fill, Message, Order, Signal, Tick

BATCH = 500
STAGES = ("generate", "handle", "encode", "pack")


def per_tick_us(stage: str, batches: int) -> float:
    """CPU us per tick of the stages up to ``stage``, as fast as it goes (ticks_per_s 0)."""
    cfg = load_file("feature_bus")
    assert isinstance(cfg, FeatureBusConfig)
    bus = FeatureBus(cfg.model_copy(update={"ticks_per_s": 0.0}))
    for _ in range(5):  # warm up: feature state, metric children
        bus.features_of(list(bus.market.quotes(BATCH, trace_ts_ns=time.time_ns())))
    upto = STAGES.index(stage)
    t0 = time.process_time()
    for _ in range(batches):
        quotes = list(bus.market.quotes(BATCH, trace_ts_ns=time.time_ns()))  # event-clocked
        if upto < 1:
            continue
        out = bus.features_of(quotes)
        if upto < 2:
            continue
        args: list[Any] = []
        for msg in out:  # as Bus._run_commit_script flattens them
            fields = msg.to_fields()
            args.append(2 * len(fields))
            for kv in fields.items():
                args.extend(kv)
        if upto < 3:
            continue
        hiredis.pack_command(("EVALSHA", "sha", len(out), *(m.STREAM for m in out), *args))
    return (time.process_time() - t0) / (batches * BATCH) * 1e6


def sample_messages() -> dict[str, Message]:
    ts_ns = 1_763_700_000_000_000_123
    return {
        "Tick": Tick(
            trace_ts_ns=ts_ns,
            symbol="BTC-USD",
            ts_ns=ts_ns,
            bid=64123.12345678,
            ask=64124.87654321,
            bid_size=1.234567,
            ask_size=0.987654,
            volume=12.345678,
        ),
        "Features": Features(
            trace_ts_ns=ts_ns,
            symbol="BTC-USD",
            ts_ns=ts_ns,
            mid=64123.999999995,
            spread_bps=0.27339284710129587,
            regime="TREND",
            features_hash="0123456789abcdef",
            bid=64123.12345678,
            ask=64124.87654321,
            bid_size=1.234567,
            ask_size=0.987654,
            book_pressure=0.11100123940385862,
            ema_short=64120.33184519734,
            ema_long=64100.12038470182,
            return_bps=1.2398475620398,
            volatility_pct=2.3984756203984,
            adx=27.384756203984,
            volume_ratio=1.0293847562,
            trend_bps=3.15283745,
            plus_di=30.1234,
            minus_di=12.98237,
            source="synthetic",
        ),
        "Signal": Signal(
            trace_ts_ns=ts_ns,
            symbol="BTC-USD",
            ts_ns=ts_ns,
            model_id="consensus",
            horizon="1m",
            edge_bps=3.2198374,
            confidence=0.712345,
            regime="TREND",
            mid=64123.999999995,
            features_hash="0123456789abcdef",
            consensus_score=0.55123,
            votes={"ema": {"edge_bps": 1.5, "confidence": 0.6, "weight": 0.3}},
            leading_model="ema",
        ),
        "Order": Order(
            trace_ts_ns=ts_ns,
            order_id="a1b2c3d4e5f6",
            symbol="BTC-USD",
            ts_ns=ts_ns,
            side="buy",
            qty=0.01234567,
            position_size_usd=791.234,
            edge_blended_bps=3.123,
            var_pct=0.4123,
            decision_price=64123.999999995,
        ),
        "Fill": Fill(
            trace_ts_ns=ts_ns,
            fill_id="f1",
            order_id="a1b2c3d4e5f6",
            symbol="BTC-USD",
            ts_ns=ts_ns,
            side="buy",
            qty=0.01234567,
            price=64125.5,
            fee=0.3166,
            slippage_bps=0.23,
            decision_price=64123.999999995,
            quote_ts_ns=ts_ns - 23,
            mid=64124.0,
            half_spread_bps=0.136,
            impact_bps=0.1,
            fee_bps=4.0,
            remaining_qty=0.0,
            time_to_fill_ms=0.0,
        ),
    }


def per_call_us(fn: Callable[[], Any], repeats: int, calls: int = 5_000) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        for _ in range(calls):
            fn()
        best = min(best, time.process_time() - t0)
    return best / calls * 1e6


def xadd_packed(msg: Message) -> bytes:
    items: list[Any] = ["XADD", msg.STREAM, "*"]
    for kv in msg.to_fields().items():
        items.extend(kv)
    return hiredis.pack_command(tuple(items))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, default=100, help="batches of 500 ticks per run")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print("feature_bus, CPU us per tick (cumulative stages, min over repeats)")
    for stage in STAGES:
        best = min(per_tick_us(stage, args.batches) for _ in range(args.repeats))
        print(f"  {stage:<10}{best:8.2f}")
    print("\nmessage codec, CPU us per call (min over repeats)")
    print(f"  {'':<10}{'to_fields':>10}{'+ pack':>10}{'from_fields':>12}")
    for name, msg in sample_messages().items():
        wire = {k: str(v) for k, v in msg.to_fields().items()}  # as Redis returns it
        enc = per_call_us(msg.to_fields, args.repeats * 3)
        packed = per_call_us(functools.partial(xadd_packed, msg), args.repeats * 3)
        dec = per_call_us(functools.partial(type(msg).from_fields, wire), args.repeats * 3)
        print(f"  {name:<10}{enc:10.2f}{packed:10.2f}{dec:12.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
