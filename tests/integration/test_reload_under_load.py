"""Acceptance of hot reload: a reload while 1,000 entries/s flow loses nothing and every
message is handled under exactly one config version; concurrent reloads end with one
consistent version everywhere; the probe the benchmark uses works."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from redis.asyncio import Redis

from services.execution.service import Execution
from services.model_router.service import ModelRouter
from services.parameter_server.probe import measure_reload_ms, percentile
from services.parameter_server.service import ParameterServer
from services.risk_harmoniser.service import RiskHarmoniser
from shared.bus import Entry, Outbox
from shared.config import content_hash, fetch_version, history
from shared.http import build_app
from shared.messages import (
    DLQ,
    FEATURES,
    PARAM_RELOAD,
    SIGNALS,
    Features,
    Watermark,
    watermark_stream,
)
from shared.service import APPLIED_KEY, Service
from tests.support import running, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-admin-token"

# Router rule files and how many signals each makes per features entry: one consensus
# signal per matched rule and horizon (no shadow models, so nothing else on `signals`).
# No decide_interval_ms (0): every entry is decided on, whatever the batches.
# The models vote unvalidated (validation.required off): the gate has its own tests.
ONE = (
    "validation: {required: false}\n"
    "rules:\n  - {pattern: '*', horizon: 1m, models: [{id: book_pressure}]}\n"
)
TWO = ONE + "  - {pattern: '*', horizon: 5m, models: [{id: ma_momentum}]}\n"
THREE = TWO + "  - {pattern: '*', horizon: 15m, models: [{id: book_pressure}, {id: ma_momentum}]}\n"
RULE_FILES = {"one.yml": (ONE, 1), "two.yml": (TWO, 2), "three.yml": (THREE, 3)}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(ROOT / "conf", tmp_path / "conf")
    for name, (text, _) in RULE_FILES.items():
        (tmp_path / "conf" / name).write_text(text)
    monkeypatch.setenv("EDGEBUS_HOME", str(tmp_path))
    monkeypatch.setenv("EDGEBUS_ADMIN_TOKEN", TOKEN)
    return tmp_path


class RecordingRouter(ModelRouter):
    """The model router, noting for each entry the config version it ran under, and for
    each batch the versions seen, the (symbol, ts_ns) of every entry handled and the
    signals made."""

    def __init__(self) -> None:
        super().__init__()
        self.version_of: dict[str, int] = {}
        self.handled_twice = 0
        # per batch: versions seen, Counter of (symbol, ts_ns) handled, and signalled
        self.batches: list[tuple[set[int], Counter[tuple[str, int]], Counter[tuple[str, int]]]]
        self.batches = []
        self._versions: set[int] = set()
        self._handled: Counter[tuple[str, int]] = Counter()
        self._made: Counter[tuple[str, int]] = Counter()

    def on_message(self, entry: Entry, out: Outbox) -> None:
        before = len(out.messages)
        super().on_message(entry, out)  # event time: decided here, not at the batch end
        self._made.update(
            (msg.symbol, msg.ts_ns) for stream, msg in out.messages[before:] if stream == SIGNALS
        )
        self.handled_twice += entry.entry_id in self.version_of
        self.version_of[entry.entry_id] = self.config_version
        assert isinstance(entry.message, Features)
        self._handled[(entry.message.symbol, entry.message.ts_ns)] += 1
        self._versions.add(self.config_version)

    def on_batch_end(self, out: Outbox) -> None:
        super().on_batch_end(out)
        self.batches.append((self._versions, self._handled, self._made))
        self._versions, self._handled, self._made = set(), Counter(), Counter()


T0 = 1_700_000_000_000_000_000


def features(i: int) -> dict[str, str]:
    symbol = ("BTC-USD", "ETH-USD", "SOL-USD", "AAPL")[i % 4]
    return Features(
        trace_ts_ns=time.time_ns(),
        symbol=symbol,
        ts_ns=T0 + i,
        mid=100.0,
        spread_bps=1.0,
        regime="RANGE",
        features_hash=f"h{i}",
        bid_size=1.0 + i % 7,
        ask_size=2.0,
        ema_short=100.0 + (i % 5) / 10,
        ema_long=100.0,
    ).to_fields()


async def feed(r: Redis, rate_per_s: int, seconds: float) -> int:
    """XADD features at ``rate_per_s``, in 10 ms slices, for ``seconds``, each slice
    followed by feature_bus's watermark (the router merges under it); returns the count."""
    slices = int(seconds * 100)
    per_slice = rate_per_s // 100
    start = time.monotonic()
    n = 0
    for s in range(slices):
        async with r.pipeline(transaction=False) as pipe:
            for _ in range(per_slice):
                pipe.xadd(FEATURES, features(n))  # type: ignore[arg-type]
                n += 1
            note = Watermark(producer="feature_bus", wm_ns=T0 + n - 1, wall_ns=time.time_ns())
            pipe.xadd(watermark_stream("feature_bus"), note.to_fields())  # type: ignore[arg-type]
            await pipe.execute()
        await asyncio.sleep(max(0.0, start + (s + 1) / 100 - time.monotonic()))
    return n


async def listening(r: Redis, channel: str) -> bool:
    return int((await r.pubsub_numsub(channel))[0][1]) >= 1


async def test_reloads_while_1000_entries_per_s_flow_lose_nothing(
    r: Redis, redis_url: str, home: Path
) -> None:
    reloads = ["three.yml", "two.yml", "one.yml", "three.yml", "two.yml"]
    async with running(ParameterServer(), redis_url), running(RecordingRouter(), redis_url) as mr:
        await wait_for(lambda: listening(r, PARAM_RELOAD), what="param.reload subscriber")
        # Version 2 (one.yml) before the flow starts, so every count below is known.
        reload_one = {"component": "model_router", "config_path": "conf/one.yml"}
        await r.publish(PARAM_RELOAD, orjson.dumps(reload_one))
        await wait_for(lambda: mr.config_version == 2, what="version 2 applied")

        async def reload_during_flow() -> None:
            for name in reloads:
                await asyncio.sleep(0.3)
                request = {"component": "model_router", "config_path": f"conf/{name}"}
                await r.publish(PARAM_RELOAD, orjson.dumps(request))

        sent, _ = await asyncio.gather(feed(r, 1000, 2.0), reload_during_flow())
        assert sent == 2000

        async def all_acked() -> bool:
            pending = int((await r.xpending(FEATURES, "model_router"))["pending"])
            return len(mr.version_of) == sent and pending == 0

        await wait_for(all_acked, timeout_s=20, what="every entry handled and acked")

    ids = [entry_id for entry_id, _ in await r.xrange(FEATURES)]
    assert set(mr.version_of) == set(ids) and mr.handled_twice == 0
    assert await r.xlen(DLQ) == 0
    # Each message ran under one version, and produced what that version's rules say.
    sources = {v.version: v.source for v in await history(r, "model_router")}
    assert sources == {1: "seed:conf/model_router_rules.yml", 2: "reload:conf/one.yml"} | {
        i + 3: f"reload:conf/{name}" for i, name in enumerate(reloads)
    }
    expected = {2: 1} | {i + 3: RULE_FILES[n][1] for i, n in enumerate(reloads)}
    # Each batch: per entry, as many signals as its version's rules say, all on that
    # entry's features (event time, no conflation at decide_interval_ms 0), nothing else.
    wrong = [
        (versions, handled, made)
        for versions, handled, made in mr.batches
        if made != Counter({key: n * expected[min(versions)] for key, n in handled.items()})
    ]
    assert wrong == []
    assert await r.xlen(SIGNALS) == sum(made.total() for _, _, made in mr.batches)
    # Swaps land between batches, in order, and every reload was in effect mid-flow.
    assert all(len(versions) == 1 for versions, _, _ in mr.batches if versions)
    in_order = [mr.version_of[i] for i in ids]
    assert in_order == sorted(in_order)
    assert set(in_order) == set(expected)
    assert mr.config_version == 2 + len(reloads)


async def test_concurrent_reloads_end_with_one_consistent_version_everywhere(
    r: Redis, redis_url: str, home: Path
) -> None:
    services: list[Service] = [ModelRouter(), RiskHarmoniser(), Execution()]
    async with (
        running(ParameterServer(), redis_url) as ps,
        running(services[0], redis_url),
        running(services[1], redis_url),
        running(services[2], redis_url),
    ):
        await wait_for(lambda: listening(r, PARAM_RELOAD), what="param.reload subscriber")
        await wait_for(lambda: all(s.config_version == 1 for s in services), what="seeded")
        transport = httpx.ASGITransport(app=build_app(ps))
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://ps") as api:

            async def via_pubsub(i: int) -> None:
                name = list(RULE_FILES)[i % 3]
                await r.publish(
                    PARAM_RELOAD,
                    orjson.dumps({"component": "model_router", "config_path": f"conf/{name}"}),
                )

            async def via_http(component: str, doc: dict[str, Any]) -> None:
                resp = await api.put(f"/config/{component}", json=doc, headers=auth)
                assert resp.status_code == 200, resp.text

            rule_docs = [yaml.safe_load(text) for text, _ in RULE_FILES.values()]
            # 20 per component, all at once: the router's half over pub/sub, half over HTTP.
            await asyncio.gather(
                *(via_pubsub(i) for i in range(10)),
                *(via_http("model_router", rule_docs[i % 3]) for i in range(10)),
                *(via_http("risk_harmoniser", {"equity_usd": 1_000.0 + i}) for i in range(20)),
                *(via_http("execution", {"taker_fee_bps": i / 10}) for i in range(20)),
            )

            async def settled() -> bool:
                for svc in services:
                    current = await fetch_version(r, svc.comp)
                    if current is None or current.version != 21:
                        return False
                    if (svc.config_version, svc.config_hash) != (current.version, current.hash):
                        return False
                return True

            await wait_for(settled, timeout_s=10, what="every service on the current version")
            for svc in services:
                current = await fetch_version(r, svc.comp)
                assert current is not None
                assert content_hash(svc.config) == current.hash
                assert svc.config.model_dump(mode="json") == current.config
                applied = orjson.loads(await r.hget(APPLIED_KEY, svc.name))
                assert (applied["version"], applied["hash"]) == (current.version, current.hash)
                assert [v.version for v in await history(r, svc.comp)] == list(
                    range(1, current.version + 1)
                )
            status = (await api.get("/config")).json()
            assert all(c["consistent"] for c in status if c["applied"])


async def test_the_reload_probe_times_publish_to_applied(
    r: Redis, redis_url: str, home: Path
) -> None:
    async with (
        running(ParameterServer(), redis_url),
        running(RiskHarmoniser(), redis_url) as rh,
        running(Execution(), redis_url),
    ):
        await wait_for(lambda: listening(r, PARAM_RELOAD), what="param.reload subscriber")
        await wait_for(lambda: rh.config_version == 1, what="seeded")
        samples = await measure_reload_ms(redis_url, "risk_harmoniser", 20, warmup=1)
        assert len(samples) == 20 and all(s > 0 for s in samples)
        assert rh.config_version == 1 + 21
        assert percentile(samples, 50) <= percentile(samples, 99) <= max(samples)
        with pytest.raises(RuntimeError, match="rejected"):
            await measure_reload_ms(
                redis_url, "risk_harmoniser", 1, config_path="conf/nope.yml", warmup=0
            )
