"""`edgebus daily --now` on a real Redis: the review of what model_router persisted, the
23:55 report of the day's fills, nothing written without --apply, and a proposal on
``param.proposals`` with it.

A bit over two days of event time of one symbol (a features entry a minute) go through
the router, which persists its paper books and scored calls; then the router is stopped
and a config without validation results is made current (the first review of a fresh
config always writes them, so the review changes it)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import orjson
import pytest
from redis.asyncio import Redis

from services.model_router.config import RouterRules
from services.model_router.service import ModelRouter
from services.validation import daily_cli
from shared.config import store_version, validate
from shared.messages import (
    FEATURES,
    FILLS,
    ORDERS,
    PARAM_PROPOSALS,
    PARAM_UPDATED,
    SIGNALS,
    ConfigProposal,
    Fill,
    Order,
    Signal,
)
from tests.support import caught_up, minute_features, research_rules, running, wait_for, watermark

pytestmark = pytest.mark.integration

DAY_NS = 86_400 * 10**9
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
MINUTE_NS = 60 * 10**9
N = 2 * 1440 + 300  # two days and five hours
MODELS = ("book_pressure", "ma_momentum", "random_baseline")


def rules() -> RouterRules:
    cfg = research_rules()
    assert isinstance(cfg, RouterRules)
    return cfg


def market() -> list[dict[str, Any]]:
    return minute_features(N, seed=5)


async def one_round_trip(r: Redis) -> None:
    """A trade of 1 on day 2, 03:00 -> 04:00, +2 USD before a 0.1 fee each way, in the
    direction of the router's latest consensus at 03:00 (so its engines back it)."""
    t = T0 + 2 * DAY_NS + 3 * 3600 * 10**9
    latest = None
    rows = cast("list[tuple[str, dict[str, str]]]", await r.xrange(SIGNALS))
    for _, fields in rows:
        s = Signal.from_fields(fields)
        if s.model_id == "consensus" and s.votes and s.ts_ns <= t and s.consensus_score:
            latest = s
    assert latest is not None and latest.consensus_score is not None
    long = latest.consensus_score > 0
    legs = (("o1", t, "buy", 100.0), ("o2", t + 3600 * 10**9, "sell", 102.0))
    if not long:
        legs = (("o1", t, "sell", 102.0), ("o2", t + 3600 * 10**9, "buy", 100.0))
    for oid, ts, side, price in legs:
        o = Order(
            order_id=oid,
            symbol="BTC-USD",
            ts_ns=ts,
            side=side,  # type: ignore[arg-type]
            qty=1.0,
            position_size_usd=price,
            edge_blended_bps=3.0,
            var_pct=0.1,
            decision_price=price,
        )
        f = Fill(
            fill_id=f"f{oid}",
            order_id=oid,
            symbol="BTC-USD",
            ts_ns=ts + 10**9,
            side=side,  # type: ignore[arg-type]
            qty=1.0,
            price=price,
            fee=0.1,
            slippage_bps=0.0,
            decision_price=price,
        )
        await r.xadd(ORDERS, o.to_fields())  # type: ignore[arg-type]
        await r.xadd(FILLS, f.to_fields())  # type: ignore[arg-type]


async def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    rc = await asyncio.to_thread(daily_cli.main, argv)
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    doc: dict[str, Any] = orjson.loads(captured.out)
    return doc


async def test_daily_now_reviews_the_router_and_applies_only_when_asked(
    r: Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    svc = ModelRouter(rules())
    async with running(svc, redis_url):
        for i, fields in enumerate(market()):
            await r.xadd(FEATURES, fields)  # type: ignore[arg-type]
            if i % 300 == 299:
                await watermark(r, "feature_bus", T0 + i * MINUTE_NS)
        await watermark(r, "feature_bus", T0 + (N - 1) * MINUTE_NS)
        await wait_for(
            lambda: caught_up(r, "model_router", FEATURES), timeout_s=30, what="all handled"
        )
        next_review_ns = svc.router.next_review_ns
    assert next_review_ns == T0 + 3 * DAY_NS + 2 * 3600 * 10**9
    await store_version(r, "model_router", rules(), "test", PARAM_UPDATED)
    await one_round_trip(r)
    proposals_before = await r.xlen(PARAM_PROPOSALS)  # the router's own reviews'
    monkeypatch.setenv("REDIS_URL", redis_url)

    doc = await run_cli(["--now"], capsys)
    assert doc["applied"] is False and doc["changed"] is True
    assert doc["review_at_ns"] == next_review_ns - DAY_NS
    assert doc["proposed_source"] == "daily:now:daily:validation"
    assert doc["config_version"] == 1
    models = doc["review"]["models"]
    assert set(models) == set(MODELS)
    assert "p_value_sharpe" in models["book_pressure"]["validation"]
    rep = doc["report"]
    assert rep["day"] == "2026-01-03" and rep["n_fills"] == 2 and rep["open_trades"] == 0
    att = rep["attribution"]
    assert att["trade_ids"] == ["BTC-USD:o1"]
    assert att["total"]["net_pnl_usd"] == pytest.approx(1.8)
    # the router's consensus signal before o1 names the engines that backed the long
    assert "unattributed" not in att["by_engine"]
    assert sum(e["net_pnl_usd"] for e in att["by_engine"].values()) == pytest.approx(1.8)
    assert await r.xlen(PARAM_PROPOSALS) == proposals_before  # nothing written

    doc = await run_cli(["--now", "--apply"], capsys)
    assert doc["applied"] is True
    entries = cast(
        "list[tuple[str, dict[str, str]]]",
        await r.xrange(PARAM_PROPOSALS, min=doc["proposal_id"], max=doc["proposal_id"]),
    )
    proposal = ConfigProposal.from_fields(entries[0][1])
    assert proposal.source.startswith("daily:now:")
    assert proposal.component == "model_router" and proposal.ts_ns == next_review_ns - DAY_NS
    assert validate("model_router", proposal.config) != rules()  # validation results written
    assert await r.xlen(PARAM_PROPOSALS) == proposals_before + 1


async def test_daily_now_without_redis_is_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    rc = await asyncio.to_thread(daily_cli.main, ["--now"])
    err = capsys.readouterr().err
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "cannot reach Redis" in err
    assert await asyncio.to_thread(daily_cli.main, ["--now", "--day", "2026-13-01"]) == 2
