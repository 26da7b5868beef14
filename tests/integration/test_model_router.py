"""model_router on a real Redis: every features entry is handled and a symbol gets one
consensus signal per decide_interval_ms of event time, on the features opening the
interval; a rules reload under load takes effect between two batches with nothing lost,
and bad rules are refused naming the key while the old rules stay in force.

The router merges features under feature_bus's watermarks: these tests write them
(``watermark``) as feature_bus would."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from services.model_router.config import RouterRules
from services.model_router.service import ModelRouter
from services.parameter_server.config import ParameterServerConfig
from services.parameter_server.service import ParameterServer
from shared.config import BusSettings, store_version, validate
from shared.messages import (
    FEATURES,
    PARAM_REJECTED,
    PARAM_RELOAD,
    PARAM_UPDATED,
    ROUTER_SWITCHES,
    SIGNALS,
    Features,
)
from tests.support import caught_up, running, wait_for, watermark

pytestmark = pytest.mark.integration

BUS = {"block_ms": 20, "batch_size": 50}
T0 = 1_700_000_000_000_000_000


def rules(horizon: str, model: str, decide_interval_ms: float = 0.0) -> RouterRules:
    cfg = validate(
        "model_router",
        {
            "bus": BUS,
            "decide_interval_ms": decide_interval_ms,
            "validation": {"required": False},
            "rules": [{"pattern": "*", "horizon": horizon, "models": [{"id": model}]}],
        },
    )
    assert isinstance(cfg, RouterRules)
    return cfg


def features(i: int, symbol: str = "BTC-USD") -> dict[str, Any]:
    return Features(
        trace_ts_ns=time.time_ns(),
        symbol=symbol,
        ts_ns=ts_of(i),
        mid=100.0 + (i % 7) * 0.01,
        spread_bps=1.0,
        regime="TREND",
        features_hash=f"h{i}",
        bid_size=1.0 + i % 3,
        ask_size=1.0,
        ema_short=100.0 + (i % 5) * 0.02,
        ema_long=100.0,
    ).to_fields()


def ts_of(i: int) -> int:
    """Event time of ``features(i)``."""
    return T0 + i * 1_000_000


def features_handled(svc: ModelRouter) -> float:
    """Features entries handled and acknowledged so far (the watermark entries the
    router also acknowledges are not counted)."""
    got = REGISTRY.get_sample_value(
        "edgebus_messages_processed_total", {"service": svc.name, "stream": FEATURES}
    )
    return got or 0.0


async def consensus_signals(r: Redis) -> list[dict[str, str]]:
    return [f for _, f in await r.xrange(SIGNALS) if f["model_id"] == "consensus"]


async def pending(r: Redis) -> int:
    return int((await r.xpending(FEATURES, "model_router"))["pending"])


async def test_reload_under_load_takes_effect_on_the_next_batch_and_loses_nothing(
    r: Redis, redis_url: str
) -> None:
    produced = 0
    stop = asyncio.Event()

    async def feed() -> None:
        nonlocal produced
        while not stop.is_set():
            await r.xadd(FEATURES, features(produced))
            produced += 1
            if produced % 20 == 0:
                await watermark(r, "feature_bus", ts_of(produced - 1))
                await asyncio.sleep(0.002)

    # Event time (was: one decision per batch): at most one decision per 7 ms of event
    # time, the features 1 ms apart, so every 7th entry is decided on, however batched
    # (7, not 10: ma_momentum has no edge on every 5th entry, where ema_short == ema_long).
    svc = ModelRouter(rules("1m", "book_pressure", decide_interval_ms=7))
    async with running(svc, redis_url):
        start = features_handled(svc)

        def handled() -> float:
            return features_handled(svc) - start

        producer = asyncio.ensure_future(feed())
        try:
            await wait_for(lambda: handled() >= 300, what="load flowing")
            processed_before_store = handled()
            stored = await store_version(
                r,
                "model_router",
                rules("5m", "ma_momentum", decide_interval_ms=7),
                "test",
                channel=PARAM_UPDATED,
            )
            await wait_for(lambda: svc.config_version == stored.version, what="v2 applied")
            processed_when_seen_applied = handled()
            produced_at_apply = produced
            await wait_for(lambda: produced >= produced_at_apply + 300, what="more load")
        finally:
            stop.set()
            await producer
        await watermark(r, "feature_bus", ts_of(produced - 1))  # complete through the last
        await wait_for(lambda: handled() == produced, timeout_s=20, what="all processed")
        await wait_for(lambda: caught_up(r, "model_router", FEATURES), what="nothing pending")
        assert await pending(r) == 0
    sigs = await consensus_signals(r)
    index = [(int(f["ts_ns"]) - T0) // 1_000_000 for f in sigs]
    # One symbol: one consensus signal per 7 ms of event time, on the entry opening it,
    # across the reload too (the interval is the symbol's, not the rules').
    assert index == list(range(0, produced, 7))
    seq = [(f["horizon"], tuple(orjson.loads(f["votes"]))) for f in sigs]
    old, new = ("1m", ("book_pressure",)), ("5m", ("ma_momentum",))
    assert set(seq) == {old, new}
    switch_at = seq.index(new)
    # one clean switch point between two batches: old rules before it, new rules after
    assert seq[:switch_at] == [old] * switch_at
    assert seq[switch_at:] == [new] * (len(seq) - switch_at)
    # entries handled before the new version was stored used the old rules; everything
    # handled after the apply (announced between batches) used the new ones
    assert processed_before_store <= index[switch_at]
    assert index[switch_at - 1] < processed_when_seen_applied
    # the leader changed with the rules: logged on router.switches
    switches = [f for _, f in await r.xrange(ROUTER_SWITCHES)]
    assert [(f["symbol"], f["from_model"], f["to_model"]) for f in switches] == [
        ("BTC-USD", "none", "book_pressure"),
        ("BTC-USD", "book_pressure", "ma_momentum"),
    ]
    assert "book_pressure no longer routed by the rules" in switches[1]["reason"]


async def test_a_bad_stored_version_is_refused_naming_the_key_and_old_rules_stay(
    r: Redis, redis_url: str
) -> None:
    pubsub = r.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(PARAM_REJECTED)
    svc = ModelRouter(rules("1m", "book_pressure"))
    async with running(svc, redis_url):
        # A version the schema refuses (as if written by an older parameter server).
        bad = {"rules": [{"pattern": "*", "models": [{"id": "book_pressure", "weight": -2}]}]}
        body = {"hash": "x", "ts_ns": time.time_ns(), "source": "test", "config": bad}
        base = "edgebus:config:model_router"
        await r.hset(f"{base}:versions", "7", orjson.dumps(body))
        await r.set(f"{base}:current", 7)
        await r.publish(PARAM_UPDATED, orjson.dumps({"component": "model_router", "version": 7}))
        note = await wait_for(lambda: pubsub.get_message(timeout=0.1), what="param.rejected")
        reason = orjson.loads(note["data"])["reason"]
        assert "rules.0.models.0.weight" in reason
        for i in range(10):  # one symbol each: every entry is decided on (no conflation)
            await r.xadd(FEATURES, features(i, symbol=f"SYM-{i}"))
        await watermark(r, "feature_bus", ts_of(9))
        await wait_for(lambda: caught_up(r, "model_router", FEATURES), what="processed")
        assert svc.config_version == 0
    await pubsub.aclose()
    sigs = await consensus_signals(r)
    assert len(sigs) == 10 and {f["horizon"] for f in sigs} == {"1m"}


async def test_parameter_server_refuses_bad_rules_file_and_the_router_keeps_its_rules(
    r: Redis, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "bad_rules.yml").write_text(
        "rules:\n  - pattern: '*'\n    models:\n      - {id: crystal_ball, weight: 1}\n"
    )
    monkeypatch.setenv("EDGEBUS_HOME", str(tmp_path))
    pubsub = r.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(PARAM_REJECTED)
    ps = ParameterServer(ParameterServerConfig(seed_from_files=False, bus=BusSettings(block_ms=20)))
    svc = ModelRouter(rules("1m", "book_pressure"))
    async with running(ps, redis_url), running(svc, redis_url):
        await r.publish(
            PARAM_RELOAD,
            orjson.dumps({"component": "model_router", "config_path": "conf/bad_rules.yml"}),
        )
        note = await wait_for(lambda: pubsub.get_message(timeout=0.1), what="param.rejected")
        reason = orjson.loads(note["data"])["reason"]
        assert "rules.0.models.0.id" in reason and "crystal_ball" in reason
        assert await r.get("edgebus:config:model_router:current") is None  # nothing stored
        await r.xadd(FEATURES, features(1))
        await watermark(r, "feature_bus", ts_of(1))
        await wait_for(lambda: caught_up(r, "model_router", FEATURES), what="processed")
    with contextlib.suppress(Exception):
        await pubsub.aclose()
    (sig,) = await consensus_signals(r)
    assert sig["horizon"] == "1m" and "book_pressure" in orjson.loads(sig["votes"])
