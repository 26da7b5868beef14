"""The measured scenarios of `make bench`, each returning its result keys."""

from __future__ import annotations

import statistics
import time
from typing import cast

import orjson
import redis

from bench.micro import BENCH_CONF, per_call_us
from bench.stack import BenchStack
from services.backtest import runner
from services.model_router.config import RouterRules
from shared.config import COMPONENTS, ComponentConfig, load_file, store_version
from shared.messages import PARAM_UPDATED

# ---- configs -----------------------------------------------------------------------------


def stack_configs(*, ticks_per_s: float) -> dict[str, ComponentConfig]:
    """Every component's config for the bench's stack: the bench's workload (bench/conf/,
    docs/performance.md: the same as the in-process figure and `make bench-peers`), the
    rest from conf/, and the synthetic source at the given wall-clock rate (0 = as fast
    as the stack accepts)."""
    out: dict[str, ComponentConfig] = {c: load_file(c) for c in COMPONENTS}
    out.update(bench_configs())
    feature_bus = out["feature_bus"]
    out["feature_bus"] = feature_bus.model_copy(
        update={"ticks_per_s": ticks_per_s, "max_downstream_lag": 2_000}
    )
    return out


def bench_configs(*, shipped: bool = False) -> dict[str, ComponentConfig]:
    """The four trading components as the backtest reads them: bench/conf/ over conf/, or
    with ``shipped`` conf/ alone."""
    return runner.load_configs(None if shipped else BENCH_CONF)


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
    rules = configs["model_router"]
    assert isinstance(rules, RouterRules)
    router = ModelRouter(rules)
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


def _added(stack: BenchStack, stream: str) -> int:
    """Entries ever appended to ``stream`` (0 before its first)."""
    try:
        return int(stack.r.xinfo_stream(stream)["entries-added"])
    except redis.ResponseError:  # not created yet
        return 0


def _counts(stack: BenchStack) -> tuple[int, int, int]:
    """Ticks the source published, entries on ``orders`` and on ``fills``."""
    ticks = int(stack.health("feature_bus").get("ticks_published", 0))
    return ticks, _added(stack, "orders"), _added(stack, "fills")


def e2e_throughput(stack: BenchStack, seconds: float, warmup_s: float = 5.0) -> dict[str, float]:
    """Sustained end-to-end rate over ``seconds`` after a warm-up, with the orders and
    fills written over the same window.

    The synthetic source runs as fast as the pipeline accepts: it waits while any
    consumer group on md.ticks, features, signals or orders lags more than
    ``max_downstream_lag`` entries. So a tick counted here has gone through every stage
    to execution (within that bounded lag, which is checked at the end). The market runs
    on its own event clock (a full-speed run is the same market fast-forwarded), so the
    orders per 1,000 ticks are the backtest's, not fewer for being fast.
    """
    time.sleep(warmup_s)
    ticks0, orders0, fills0 = _counts(stack)
    t0 = time.monotonic()
    time.sleep(seconds)
    ticks1, orders1, fills1 = _counts(stack)
    dt = time.monotonic() - t0
    worst_lag = 0
    for stream in ("md.ticks", "features", "signals", "orders"):
        for g in stack.r.xinfo_groups(stream):
            if g.get("lag") is not None:
                worst_lag = max(worst_lag, int(g["lag"]))
    ticks = ticks1 - ticks0
    return {
        "e2e_ticks_per_s": round(ticks / dt, 1),
        "e2e_orders_per_1k_ticks": round(1_000 * (orders1 - orders0) / max(ticks, 1), 2),
        "e2e_fills_per_s": round((fills1 - fills0) / dt, 1),
        "e2e_max_group_lag_entries": worst_lag,
    }


def xrange_window(
    stack: BenchStack, stream: str, start_ms: int, end_ms: int, count: int | None = None
) -> list[tuple[str, dict[str, str]]]:
    """The entries of ``stream`` appended within [start_ms, end_ms] (the stack's client
    decodes responses, so ids and fields are text)."""
    got = stack.r.xrange(stream, min=str(start_ms), max=str(end_ms), count=count)
    return cast(list[tuple[str, dict[str, str]]], got or [])


def _entry_ms(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


def _quantiles(lat_ms: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(sorted(lat_ms), n=100)
    return round(q[49], 2), round(q[98], 2)


def _trace_latency_ms(
    stack: BenchStack, stream: str, start_ms: int, end_ms: int
) -> tuple[list[float], list[float]]:
    """(first per order, every entry): entry id time minus ``trace_ts_ns`` (wall clock,
    stamped at ingest) for the entries of ``stream`` appended within the window."""
    first: dict[str, float] = {}
    every: list[float] = []
    for entry_id, fields in xrange_window(stack, stream, start_ms, end_ms):
        trace = int(fields.get("trace_ts_ns", 0))
        if trace:
            lat = _entry_ms(entry_id) - trace / 1e6
            every.append(lat)
            first.setdefault(fields.get("order_id", entry_id), lat)
    return list(first.values()), every


def tick_to_fill(stack: BenchStack, seconds: float, warmup_s: float = 3.0) -> dict[str, float]:
    """Latency from the originating tick (trace_ts_ns, stamped at ingest) to the append of
    its order (``tick_to_order_*``) and of its order's first fill (``tick_to_fill_*``) in
    Redis (their entry ids, ms resolution), over a ``seconds`` window.

    A fill uses only a quote after the order's event time (plus the simulated latency):
    the symbol's next quote, which at 1,000 ticks/s over 4 symbols comes about 4 ms of
    wall time later, so the fill's latency holds that wait and the order's does not.
    The first fill per order: an order larger than the displayed size fills the rest on
    later quotes of its symbol (the fill model's participation cap), and those fills
    carry the same trace, so they measure the market's liquidity, not the pipeline.
    They are reported apart (``tick_to_fill_all_fills_p99_ms``)."""
    time.sleep(warmup_s)
    start_ms = int(time.time() * 1000)
    time.sleep(seconds)
    end_ms = int(time.time() * 1000)
    orders_ms, _ = _trace_latency_ms(stack, "orders", start_ms, end_ms)
    first_ms, every_ms = _trace_latency_ms(stack, "fills", start_ms, end_ms)
    out: dict[str, float] = {
        "tick_to_order_samples": len(orders_ms),
        "tick_to_fill_samples": len(first_ms),
    }
    if len(orders_ms) >= 2:
        out["tick_to_order_p50_ms"], out["tick_to_order_p99_ms"] = _quantiles(orders_ms)
    if len(first_ms) < 2:
        out["tick_to_fill_p50_ms"] = out["tick_to_fill_p99_ms"] = float("nan")
        return out
    out["tick_to_fill_p50_ms"], out["tick_to_fill_p99_ms"] = _quantiles(first_ms)
    out["tick_to_fill_all_fills_p99_ms"] = _quantiles(every_ms)[1]
    out["latency_run_ticks"] = int(stack.health("feature_bus").get("ticks_published", 0))
    return out


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
