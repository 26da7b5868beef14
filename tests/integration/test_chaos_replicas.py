"""Two replicas of a service in one consumer group; one is killed (-9) while it holds
delivered, unacknowledged entries: the other takes them over with XAUTOCLAIM and
every entry is turned into its output exactly once."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from services.model_router.service import ModelRouter
from shared.config import BusSettings, load_file, store_version
from shared.messages import FEATURES, PARAM_UPDATED, SIGNALS
from tests.support import complete, running, wait_for
from tests.support import features as support_features

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def features(i: int) -> dict[str, str | int | float]:
    # One symbol per entry: the router decides once per symbol per batch (conflation),
    # so distinct symbols make every entry show up as its own signal.
    return support_features(
        i, symbol=f"ETH-{i}", ts_base_ns=1_700_000_000_000_000_000, bid_size=1.0, ask_size=3.0
    )


def spawn(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "shared.cli", "run", "model_router"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def pending_of(r: Redis, consumer: str) -> int:
    rows = await r.xpending_range(FEATURES, "model_router", "-", "+", 10_000, consumer)
    return len(rows)


async def test_a_killed_replicas_pending_work_is_taken_over_by_the_other(
    r: Redis, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Take-over after 300 ms idle instead of 5 s: stored as the current config version,
    # which both replicas load at start.
    cfg = load_file("model_router")
    fast = BusSettings(block_ms=100, claim_idle_ms=300, claim_interval_s=0.1)
    await store_version(
        r, "model_router", cfg.model_copy(update={"bus": fast}), "test", PARAM_UPDATED
    )
    env = dict(
        os.environ,
        REDIS_URL=redis_url,
        EDGEBUS_CONSUMER="model_router@a",
        EDGEBUS_PORT_OFFSET=str(random.randint(1500, 1900) * 10),  # ports 23001-27006
        EDGEBUS_HOME=str(ROOT),
    )
    replica_a = spawn(env, tmp_path / "a.log")
    monkeypatch.setenv("EDGEBUS_CONSUMER", "model_router@b")
    try:
        try:
            await wait_for(lambda: _consumers(r), 30, what="replica a up")
        except AssertionError:
            raise AssertionError((tmp_path / "a.log").read_text()[-3000:]) from None
        # Freeze a while it blocks in XREADGROUP: Redis still delivers to it, so the
        # entries land in a's pending list and stay there.
        replica_a.send_signal(signal.SIGSTOP)
        for i in range(50):
            await r.xadd(FEATURES, features(i))
        await r.xadd(*complete("feature_bus"))  # type: ignore[arg-type]
        await wait_for(lambda: pending_of(r, "model_router@a"), what="a holds pending entries")
        held = await pending_of(r, "model_router@a")
        replica_a.kill()
        replica_a.wait(timeout=10)
        async with running(ModelRouter(), redis_url) as b:
            assert b.bus.consumer == "model_router@b"
            for i in range(50, 100):
                await r.xadd(FEATURES, features(i))
            await wait_for(lambda: _zero_pending(r), timeout_s=15, what="all acknowledged")
            assert await pending_of(r, "model_router@a") == 0
    finally:
        if replica_a.poll() is None:
            replica_a.kill()
            replica_a.wait()
    assert held > 0
    keys = [(f["ts_ns"], f["model_id"]) for _, f in await r.xrange(SIGNALS)]
    assert not [k for k, n in Counter(keys).items() if n > 1], "an entry was handled twice"
    assert len({t for t, _ in keys}) == 100, "an entry was never handled"


async def _consumers(r: Redis) -> bool:
    with contextlib.suppress(ResponseError):
        names = {c["name"] for c in await r.xinfo_consumers(FEATURES, "model_router")}
        return names == {"model_router@a"}
    return False


async def _zero_pending(r: Redis) -> bool:
    info = await r.xpending(FEATURES, "model_router")
    groups = await r.xinfo_groups(FEATURES)
    return int(info["pending"]) == 0 and all(g.get("lag") in (0, None) for g in groups)
