"""model_router's research state on a real Redis: scorecards, paper books and trust
survive a restart (issue 18's acceptance), and the daily review's proposal becomes a
version in parameter_server's history with nothing applied twice.

Three days of event time of one symbol (a features entry a minute) go through the
router; the review at 02:00 UTC of each of the four days writes validation results, proposed
on ``param.proposals`` and stored by a running parameter_server."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from services.model_router.config import RouterRules
from services.model_router.service import ModelRouter, calls_key, state_key
from services.parameter_server.config import ParameterServerConfig
from services.parameter_server.service import ParameterServer
from shared.config import history, validate
from shared.messages import FEATURES, PARAM_PROPOSALS
from tests.support import caught_up, minute_features, research_rules, running, wait_for, watermark

pytestmark = pytest.mark.integration

DAY_NS = 86_400 * 10**9
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
MINUTE_NS = 60 * 10**9
N = 3 * 1440 + 200  # three days and a bit


def rules() -> RouterRules:
    cfg = research_rules()
    assert isinstance(cfg, RouterRules)
    return cfg


def market() -> list[dict[str, Any]]:
    return minute_features(N, seed=3)


async def test_scorecards_books_and_trust_survive_a_restart(r: Redis, redis_url: str) -> None:
    ps = ParameterServer(ParameterServerConfig(seed_from_files=False))
    svc = ModelRouter(rules())
    async with running(ps, redis_url), running(svc, redis_url):
        for i, fields in enumerate(market()):
            await r.xadd(FEATURES, fields)
            if i % 200 == 199:
                await watermark(r, "feature_bus", T0 + i * MINUTE_NS)
        await watermark(r, "feature_bus", T0 + (N - 1) * MINUTE_NS)
        await wait_for(
            lambda: caught_up(r, "model_router", FEATURES), timeout_s=60, what="all handled"
        )
        # the four reviews' proposals, stored by parameter_server, once each
        await wait_for(
            lambda: caught_up(r, "parameter_server", PARAM_PROPOSALS), what="proposals stored"
        )
        versions = await history(r, "model_router")
        assert [v.source for v in versions] == ["daily:validation"] * 4
        await wait_for(lambda: svc.config_version == versions[-1].version, what="v2 applied")
        assert svc.config == validate("model_router", versions[-1].config)
        before = svc.router.dump()
        calls_before = {m: list(c) for m, c in svc.router.calls.items()}
        assert before["days_closed"] == 3
        assert set(before["trust"]) >= {"book_pressure", "ma_momentum", "random_baseline"}
        assert before["scorecards"]["book_pressure"]["1m"][0] > 1000  # outcomes scored
        assert svc.router.vote_mult  # p-values and trust weigh the votes
        consumer = svc.bus.consumer
        assert svc.health_details()["models"]["random_baseline"]["stage"] == "shadow"

    assert await r.exists(state_key(consumer), calls_key(consumer, "book_pressure")) == 2
    again = ModelRouter(validate("model_router", versions[-1].config))  # type: ignore[arg-type]
    async with running(again, redis_url):
        assert again.router.dump() == orjson.loads(orjson.dumps(before))
        assert {m: [tuple(c) for c in v] for m, v in again.router.calls.items()} == {
            m: [tuple(c) for c in v] for m, v in calls_before.items()
        }
        assert again.router.vote_mult == svc.router.vote_mult
        t = again.health_details()["models"]["book_pressure"]["trust"]
        assert t is not None and 0.0 <= t["index"] <= 1.0
