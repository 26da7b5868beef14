"""feature_bus in-process on a real Redis: the synthetic source goes through the same
quality + features path, and per-source health shows on /metrics."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY, generate_latest
from redis.asyncio import Redis

from services.feature_bus.service import FeatureBus
from shared.config import load_file
from shared.messages import FEATURES, MD_RAW, MD_TICKS, Features, RawQuote
from tests.support import running, wait_for

pytestmark = pytest.mark.integration


async def test_synthetic_source_and_md_raw_share_one_path(redis_url: str, r: Redis) -> None:
    cfg = load_file("feature_bus").model_copy(update={"ticks_per_s": 0.0})
    async with running(FeatureBus(cfg), redis_url):
        await wait_for(lambda: _at_least(r, FEATURES, 2000), what="2000 features")
        # an external quote on md.raw: checked like the rest, a crossed book to the dlq
        bad = RawQuote(symbol="EXT", ts_ns=5, bid=2.0, ask=1.0, source="replay")
        await r.xadd(MD_RAW, bad.to_fields())  # type: ignore[arg-type]
        await wait_for(lambda: _at_least(r, "dlq", 1), what="dlq entry")
    entries = await r.xrange(FEATURES, count=2000)
    feats = [Features.from_fields(f) for _, f in entries]
    assert {f.source for f in feats} == {"synthetic"}
    assert {f.symbol for f in feats} == {"BTC-USD", "ETH-USD", "SOL-USD", "AAPL"}
    assert all(f.features_hash and f.mid > 0 for f in feats)
    assert await r.xlen(MD_TICKS) >= 2000
    dead = (await r.xrange("dlq"))[0][1]
    assert dead["source_stream"] == MD_RAW and dead["reason"] == "crossed book: bid 2.0 > ask 1.0"
    text = generate_latest(REGISTRY).decode()
    assert 'edgebus_feature_source_quotes_total{source="synthetic"}' in text
    assert 'edgebus_feature_source_quality_score_ratio{source="synthetic"}' in text
    assert 'edgebus_feature_source_failures_total{reason="crossed book",source="replay"}' in text
    assert REGISTRY.get_sample_value(
        "edgebus_feature_source_latency_seconds_count", {"source": "synthetic"}
    )


async def _at_least(r: Redis, stream: str, n: int) -> bool:
    return int(await r.xlen(stream)) >= n


async def test_a_reloaded_source_takes_over_without_a_restart(redis_url: str, r: Redis) -> None:
    cfg = load_file("feature_bus").model_copy(update={"source": "replay", "ticks_per_s": 0.0})
    async with running(FeatureBus(cfg), redis_url) as svc:
        await wait_for(lambda: svc.ready.is_set(), what="ready")
        assert await r.xlen(FEATURES) == 0  # replay mode: nothing of its own
        svc.on_config(cfg.model_copy(update={"source": "synthetic"}))
        await wait_for(lambda: _at_least(r, FEATURES, 100), what="synthetic features")
