"""Champion against challenger end to end, in a backtest (issue 18's acceptance).

Two shadow models run beside the shipped live set on the synthetic market (two crypto
symbols, 13 days of event time): ``meta_logistic``, whose calls carry a real edge, and
``random_baseline``, the null model (a coin flip per decision). Each day at 02:00 UTC of
event time model_router's review validates every model and compares each shadow's paper
book with the champion's (the consensus). The test checks that the edge model goes
shadow -> canary -> live, each step one proposal (the version parameter_server stores),
that the null model is never promoted, and that the run is deterministic.

The walk-forward windows are shortened (2 days of training, 3-day segments) because the
seeds' presets need 150 days of track record; the promotion rules are the seeds'.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from services.backtest import runner
from shared.config import validate

TICKS = 2 * 1440 * 13  # two symbols, one quote a minute each, 13 days
# The market's seed. Seeds 1-4 all promote the edge model (tried); 7 does not within 13
# days: its last five days are never all better than the champion's (seed 002's streak).
SEED = 1


def configs() -> dict[str, Any]:
    cfgs = runner.load_configs()
    fb = cfgs["feature_bus"].model_dump(mode="json")
    fb["symbols"] = [s for s in fb["symbols"] if s["symbol"] in ("BTC-USD", "ETH-USD")]
    fb["nominal_ticks_per_s"] = 2 / 60
    cfgs["feature_bus"] = validate("feature_bus", fb)
    mr = cfgs["model_router"].model_dump(mode="json")
    for rule in mr["rules"]:
        if rule["pattern"] == "class:crypto":
            rule["models"].append({"id": "random_baseline", "shadow": True})
    mr["validation"]["walk_forward"] = {
        "train_days": 2,
        "test_days": 3,
        "step_days": 3,
        "purge_days": 0,
    }
    mr["promotion"]["canary_days"] = 3
    cfgs["model_router"] = validate("model_router", mr)
    return cfgs


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[runner.Backtest, runner.Result, Path]:
    cfgs = configs()
    quotes = runner.synthetic_quotes(cfgs["feature_bus"], TICKS, SEED)
    bt = runner.Backtest(cfgs)
    res = bt.run(quotes)
    out = tmp_path_factory.mktemp("promotion")
    runner.write(out, res, cfgs)
    return bt, res, out


def stages(res: runner.Result) -> list[tuple[str, str, str]]:
    return [
        (c["model_id"], c["from"], c["to"])
        for p in res.proposals
        for c in (p.report or {}).get("changes", [])
    ]


def test_the_model_with_an_edge_goes_live_through_a_canary(run: Any) -> None:
    bt, res, _ = run
    assert stages(res) == [
        ("meta_logistic", "shadow", "canary"),
        ("meta_logistic", "canary", "live"),
    ]
    canary, live = (p for p in res.proposals if "meta_logistic" in p.source)
    assert canary.source == "daily:canary:meta_logistic"
    assert live.source == "daily:live:meta_logistic"
    # the canary lasted canary_days, and voted with a tenth of its weight meanwhile
    assert (live.ts_ns - canary.ts_ns) // runner.DAY_NS >= 3
    mw = next(m for m in canary.config["rules"][0]["models"] if m["id"] == "meta_logistic")
    assert mw["canary"] is True and mw["shadow"] is False
    # applied at once, in the router itself: the model now votes at full weight
    (rule,) = [r for r in bt.router.config.rules if r.pattern == "class:crypto"]
    final = {m.id: m for m in rule.models}
    assert not final["meta_logistic"].shadow and not final["meta_logistic"].canary
    assert bt.router.stages()["meta_logistic"] == "live"
    # the reasons name the seed's criteria with their numbers
    why = canary.report["changes"][0]["reason"]
    for criterion in ("streak", "excess", "es", "p ", "trades"):
        assert criterion in why


def test_the_null_model_is_never_promoted(run: Any) -> None:
    bt, res, _ = run
    assert all(m != "random_baseline" for m, _, _ in stages(res))
    assert bt.router.stages()["random_baseline"] == "shadow"
    result = bt.router.config.validation.results["random_baseline"]
    assert not result.passed
    last = bt.router.last_review["models"]["random_baseline"]["comparison"]
    assert not last["promotable"] and last["mean_excess_bps_per_day"] < 0


def test_every_review_is_a_version_in_the_history_file(run: Any) -> None:
    _, res, out = run
    rows = [orjson.loads(x) for x in (out / "config_history.jsonl").read_bytes().splitlines()]
    assert [r["source"] for r in rows] == [p.source for p in res.proposals]
    assert [r["version"] for r in rows] == list(range(2, len(rows) + 2))
    days = [r["ts_ns"] % runner.DAY_NS for r in rows]
    assert set(days) == {2 * 3600 * 10**9}  # 02:00 UTC of event time, every one


def test_the_reviews_do_not_depend_on_the_chunks() -> None:
    cfgs = configs()
    quotes = runner.synthetic_quotes(cfgs["feature_bus"], 2 * 1440 * 3, SEED)
    one = runner.Backtest(cfgs).run(quotes, chunk_rows=500)
    two = runner.Backtest(cfgs).run(quotes, chunk_rows=777)
    assert len(one.proposals) == 3  # the reviews of days 1, 2 and 3
    assert [(p.ts_ns, p.source, p.config) for p in two.proposals] == [
        (p.ts_ns, p.source, p.config) for p in one.proposals
    ]
    assert [f.fill_id for f in two.fills] == [f.fill_id for f in one.fills]
