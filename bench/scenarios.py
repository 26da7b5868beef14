"""The measured scenarios of `make bench`, each returning its result keys."""

from __future__ import annotations

import statistics
import time
from typing import Any

import orjson
import redis

from bench.micro import per_call_us
from bench.stack import BenchStack
from services.risk_harmoniser.config import deep_merge
from shared.config import ComponentConfig, store_version, validate
from shared.messages import PARAM_UPDATED

# ---- configs -----------------------------------------------------------------------------


def bench_configs(configs: dict[str, ComponentConfig], *, ticks_per_s: float) -> dict[str, Any]:
    """The shipped configs with the bench's overrides: the source at the given rate, and
    risk trading on (nearly) every signal so that every tick can turn into a fill."""
    out = dict(configs)
    feature_bus = configs["feature_bus"]
    out["feature_bus"] = feature_bus.model_copy(
        update={"ticks_per_s": ticks_per_s, "max_downstream_lag": 2_000}
    )
    execution = configs["execution"]
    out["execution"] = type(execution).model_validate(
        deep_merge(execution.model_dump(mode="json"), EXECUTION_OVERRIDES)
    )
    risk = configs["risk_harmoniser"]
    out["risk_harmoniser"] = validate(
        "risk_harmoniser", deep_merge(risk.model_dump(mode="json"), RISK_OVERRIDES)
    )
    return out


# Market orders only, no simulated exchange latency: the bench measures the pipeline,
# not the schedule of a TWAP or the configured network delay.
EXECUTION_OVERRIDES: dict[str, Any] = {"strategies": {"enabled": False}, "latency_ms": 0.0}

# No cost gate, band, cooldown or rate limit: (nearly) every signal becomes an order.
RISK_OVERRIDES: dict[str, Any] = {
    "costs": {
        "round_trip": False,
        "safety_margin_bps": 0.0,
        "impact_coeff_bps": 0.0,
        "latency_ms": 0.0,
        "venues": {"paper": {"taker_fee_bps": 0.0}},
    },
    "sizing": {"min_order_usd": 0.0, "rebalance_band_pct": 0.0},
    "pretrade": {"max_orders_per_s": 1e9, "symbol_cooldown_ms": 0.0},
    # The bench measures the pipeline, not the breakers: sizing still keeps VaR within its
    # limit, but a drifting VaR estimate or drawdown must not halt the run.
    "breakers": {"halt_var_pct": 100.0, "daily_drawdown_pct": 100.0},
    # A one-minute VaR horizon: the synthetic market's panic regimes (jumps of 2-4 %)
    # would otherwise push a one-day VaR past any limit and halt the run.
    "var": {"horizon_s": 60.0},
}


def store_configs(url: str, configs: dict[str, ComponentConfig]) -> None:
    """Make these the current versions in Redis (services start from Redis)."""
    import asyncio

    from redis.asyncio import Redis as AsyncRedis

    async def go() -> None:
        ar = AsyncRedis.from_url(url)
        for component, cfg in configs.items():
            await store_version(ar, component, cfg, "bench", PARAM_UPDATED)
        await ar.aclose()

    asyncio.run(go())


# ---- micro -------------------------------------------------------------------------------


def micro(configs: dict[str, ComponentConfig]) -> dict[str, float]:
    """blend_us, size_us, route_us: median time per call of the pure cores."""
    from services.model_router.service import ModelRouter
    from services.risk_harmoniser.blend import blend
    from services.risk_harmoniser.sizing import bench_inputs, size

    # (edge_bps, confidence, age_s) of 4 models; half-life 5 s, noise 7 bps, prior 10 bps
    signals = tuple((3.0 + i, 0.5 + i / 10, i * 0.001) for i in range(4))
    size_args = bench_inputs()
    router = ModelRouter(configs["model_router"])
    return {
        "blend_us": round(per_call_us(lambda: blend(signals, 5.0, 7.0, 10.0)), 3),
        "size_us": round(per_call_us(lambda: size(*size_args)), 3),
        "route_us": round(per_call_us(lambda: router.routes("BTC-USD")), 3),
    }


def python_xadd_rate(port: int, n: int = 200_000) -> float:
    """Fallback when redis-benchmark is absent: pipelined XADD from Python."""
    r = redis.Redis(port=port)
    t0 = time.perf_counter()
    for _ in range(n // 1000):
        pipe = r.pipeline(transaction=False)
        for _ in range(1000):
            pipe.xadd("bench:xadd", {"f": "v"}, maxlen=100_000, approximate=True)
        pipe.execute()
    return n / (time.perf_counter() - t0)


# ---- the stack ---------------------------------------------------------------------------


def _counts(stack: BenchStack) -> tuple[int, int]:
    return int(stack.health("feature_bus").get("ticks_published", 0)), int(
        stack.health("execution").get("fills", 0)
    )


def e2e_throughput(stack: BenchStack, seconds: float, warmup_s: float = 5.0) -> dict[str, float]:
    """Sustained end-to-end rate over ``seconds`` after a warm-up.

    The synthetic source runs as fast as the pipeline accepts: it waits while any
    consumer group on md.ticks, features, signals or orders lags more than
    ``max_downstream_lag`` entries. So a tick counted here has gone through every stage
    to execution (within that bounded lag, which is checked at the end); fills out are
    whatever the risk engine decides, reported beside it.
    """
    time.sleep(warmup_s)
    ticks0, fills0 = _counts(stack)
    t0 = time.monotonic()
    time.sleep(seconds)
    ticks1, fills1 = _counts(stack)
    dt = time.monotonic() - t0
    worst_lag = 0
    for stream in ("md.ticks", "features", "signals", "orders"):
        for g in stack.r.xinfo_groups(stream):
            if g.get("lag") is not None:
                worst_lag = max(worst_lag, int(g["lag"]))
    return {
        "e2e_ticks_per_s": round((ticks1 - ticks0) / dt, 1),
        "e2e_fills_per_s": round((fills1 - fills0) / dt, 1),
        "e2e_max_group_lag_entries": worst_lag,
    }


def _entry_ms(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


def tick_to_fill(stack: BenchStack, seconds: float, warmup_s: float = 3.0) -> dict[str, float]:
    """Latency from the originating tick (trace_ts_ns) to the append of its order's first
    fill in Redis (its entry id, ms resolution), over a ``seconds`` window.

    The first fill per order: an order larger than the displayed size fills the rest on
    later ticks of its symbol (the fill model's participation cap), and those fills
    carry the same trace, so they measure the market's liquidity, not the pipeline.
    They are reported apart (``tick_to_fill_all_fills_p99_ms``)."""
    time.sleep(warmup_s)
    start_ms = int(time.time() * 1000)
    time.sleep(seconds)
    end_ms = int(time.time() * 1000)
    first_ms: dict[str, float] = {}
    every_ms: list[float] = []
    for entry_id, fields in stack.r.xrange("fills", min=str(start_ms), max=str(end_ms)):
        trace = int(fields.get("trace_ts_ns", 0))
        if trace:
            lat = _entry_ms(entry_id) - trace / 1e6
            every_ms.append(lat)
            first_ms.setdefault(fields.get("order_id", entry_id), lat)
    lat_ms = sorted(first_ms.values())
    if len(lat_ms) < 2:
        return {"tick_to_fill_p50_ms": float("nan"), "tick_to_fill_p99_ms": float("nan")}
    q = statistics.quantiles(lat_ms, n=100)
    q_all = statistics.quantiles(sorted(every_ms), n=100)
    ticks = stack.health("feature_bus").get("ticks_published", 0)
    return {
        "tick_to_fill_p50_ms": round(q[49], 2),
        "tick_to_fill_p99_ms": round(q[98], 2),
        "tick_to_fill_samples": len(lat_ms),
        "tick_to_fill_all_fills_p99_ms": round(q_all[98], 2),
        "latency_run_ticks": ticks,
    }


def hot_reload(stack: BenchStack, n: int) -> dict[str, float]:
    """Publish param.reload -> param.applied from the service using that component."""
    ps = stack.r.pubsub(ignore_subscribe_messages=True)
    ps.subscribe("param.applied", "param.rejected")
    targets = [
        ("risk_harmoniser", "conf/risk_params.yml"),
        ("model_router", "conf/model_router_rules.yml"),
    ]
    lat_ms: list[float] = []
    for i in range(n):
        component, path = targets[i % len(targets)]
        t0 = time.perf_counter()
        stack.r.publish("param.reload", orjson.dumps({"component": component, "config_path": path}))
        deadline = t0 + 5.0
        while time.perf_counter() < deadline:
            msg = ps.get_message(timeout=0.5)
            if msg is None:
                continue
            if msg["channel"] == "param.rejected":
                raise RuntimeError(f"reload rejected: {msg['data']}")
            note = orjson.loads(msg["data"])
            if note.get("component") == component:
                lat_ms.append((time.perf_counter() - t0) * 1000)
                break
        else:
            raise RuntimeError(f"reload {i} of {component} not applied within 5 s")
    ps.close()
    lat_ms.sort()
    q = statistics.quantiles(lat_ms, n=100)
    return {"hot_reload_p50_ms": round(q[49], 2), "hot_reload_p99_ms": round(q[98], 2)}
