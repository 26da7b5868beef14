"""The versioned store in Redis (shared.config): versions, current, seeding, history."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from services.risk_harmoniser.config import RiskParams
from shared.config import fetch_version, history, load_file, seed_version, store_version
from shared.messages import PARAM_UPDATED

pytestmark = pytest.mark.integration


async def test_versions_count_up_and_the_last_stored_is_current(r: Redis) -> None:
    assert await fetch_version(r, "risk_harmoniser") is None
    caps = [float(1_000 + i) for i in range(30)]
    stored = await asyncio.gather(
        *(
            store_version(r, "risk_harmoniser", RiskParams(equity_usd=c), "t", PARAM_UPDATED)
            for c in caps
        )
    )
    assert sorted(s.version for s in stored) == list(range(1, 31))
    current = await fetch_version(r, "risk_harmoniser")
    last = max(stored, key=lambda s: s.version)
    assert current is not None and (current.version, current.hash) == (last.version, last.hash)
    assert [h.version for h in await history(r, "risk_harmoniser")] == list(range(1, 31))
    v7 = await fetch_version(r, "risk_harmoniser", 7)
    assert v7 is not None and v7.config["equity_usd"] in caps
    assert await fetch_version(r, "risk_harmoniser", 31) is None


async def test_seeding_stores_only_when_there_is_no_version(r: Redis) -> None:
    cfg = load_file("execution")
    first = await seed_version(r, "execution", cfg, "seed:x", PARAM_UPDATED)
    again = await seed_version(r, "execution", cfg, "seed:x", PARAM_UPDATED)
    assert first is not None and first.version == 1 and again is None
    assert len(await history(r, "execution")) == 1


async def test_a_current_pointer_without_its_body_reads_as_none(r: Redis) -> None:
    await r.set("edgebus:config:execution:current", "3")
    assert await fetch_version(r, "execution") is None
