"""TAPE, SWEEP and LEADER on hand-built features (services/model_router/flow_engines.py)."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from services.model_router.flow_engines import LeaderEngine, SweepEngine, TapeEngine
from services.model_router.registry import CATALOGUE, ModelRegistry
from shared.messages import Features

T0 = 1_763_700_000_000_000_000


def feats(symbol: str = "ETH-USD", ts_ns: int = T0, **values: Any) -> Features:
    return Features(
        symbol=symbol,
        ts_ns=ts_ns,
        mid=100.0,
        spread_bps=1.0,
        regime="TREND",
        features_hash="h",
        **values,
    )


def test_tape_follows_the_flow() -> None:
    tape = TapeEngine()
    assert tape.predict(feats(), "1m") is None  # no prints
    assert (
        tape.predict(feats(flow_imbalance=0.0, trade_rate_per_s=0.0, sweep_bps=0.0), "1m") is None
    )
    edge, conf = tape.predict(feats(flow_imbalance=0.5, trade_rate_per_s=2.5, sweep_bps=0.0), "1m")  # type: ignore[misc]
    assert edge == pytest.approx(10.0) and conf == pytest.approx(0.5 * 0.5)
    edge, conf = tape.predict(
        feats(flow_imbalance=-1.0, trade_rate_per_s=10.0, sweep_bps=0.0), "1m"
    )  # type: ignore[misc]
    assert edge == -15.0 and conf == 1.0  # clipped at 15 bps; full confidence from 5 trades/s


def test_sweep_follows_the_sweep_while_it_lasts() -> None:
    sweep = SweepEngine()
    assert sweep.predict(feats(), "1m") is None
    assert (
        sweep.predict(feats(flow_imbalance=0.1, trade_rate_per_s=1.0, sweep_bps=0.0), "1m") is None
    )
    assert (
        sweep.predict(feats(flow_imbalance=0.1, trade_rate_per_s=1.0, sweep_bps=2_000.0), "1m")
        is None
    )
    edge, conf = sweep.predict(
        feats(flow_imbalance=0.0, trade_rate_per_s=1.0, sweep_bps=15_000.0), "1m"
    )  # type: ignore[misc]
    assert edge == pytest.approx(12.0) and conf == pytest.approx(0.75)
    edge, conf = sweep.predict(
        feats(flow_imbalance=0.0, trade_rate_per_s=1.0, sweep_bps=-30_000.0), "1m"
    )  # type: ignore[misc]
    assert edge == -20.0 and conf == 1.0


def run_pair(engine: LeaderEngine, steps: int, lag_copy: bool = True, seed: int = 3) -> None:
    """BTC-USD returns drawn at random, one quote a second; ETH-USD's return at step t is
    BTC-USD's at t - 1 (lag_copy) or an independent draw."""
    rng = random.Random(seed)
    prev = 0.0
    for t in range(steps):
        r = rng.gauss(0.0, 10.0)
        ts = T0 + t * 10**9
        engine.observe(feats("BTC-USD", ts, return_bps=r))
        engine.observe(
            feats("ETH-USD", ts + 10**8, return_bps=prev if lag_copy else rng.gauss(0, 10))
        )
        prev = r


def test_leader_learns_the_beta_of_a_lagged_copy() -> None:
    engine = LeaderEngine(min_samples=30)
    run_pair(engine, 20)
    assert engine.beta("ETH-USD") is None  # too few samples
    assert engine.predict(feats("ETH-USD", T0 + 20 * 10**9), "1m") is None
    run_pair(engine := LeaderEngine(min_samples=30), 400)
    beta = engine.beta("ETH-USD")
    assert beta is not None and beta == pytest.approx(1.0, abs=0.05)
    pred = engine.predict(feats("ETH-USD", T0 + 400 * 10**9), "1m")
    assert pred is not None
    lead = engine._leader
    assert lead is not None
    assert pred[0] == pytest.approx(max(-25.0, min(25.0, beta * lead.last_closed_bps)))
    assert pred[1] == pytest.approx(min(1.0, abs(beta)))
    assert engine.predict(feats("BTC-USD", T0 + 400 * 10**9), "1m") is None  # the leader waits


def test_leader_finds_no_beta_without_a_lag() -> None:
    engine = LeaderEngine(min_samples=30)
    run_pair(engine, 2_000, lag_copy=False)
    beta = engine.beta("ETH-USD")
    assert beta is not None and abs(beta) < 0.15


def test_leader_waits_without_its_leader() -> None:
    engine = LeaderEngine()
    for t in range(100):
        engine.observe(feats("ETH-USD", T0 + t * 10**9, return_bps=1.0))
    assert engine.predict(feats("ETH-USD", T0 + 100 * 10**9), "1m") is None
    assert engine._leader_closed == {} and math.isnan(engine.beta("ETH-USD") or math.nan)


def test_the_registry_has_the_three_engines() -> None:
    for mid, regimes in (
        ("tape", {"TREND", "RANGE"}),
        ("sweep", {"TREND", "RANGE"}),
        ("leader", {"TREND"}),
    ):
        assert mid in CATALOGUE
        assert set(CATALOGUE[mid].regimes) == regimes
    reg = ModelRegistry()
    assert reg.observes("leader") and not reg.observes("tape") and not reg.observes("sweep")
    assert reg.predict("tape", feats(), "1m") is None  # waits, counted as a wait
    assert reg.stats["tape"].waits == 1 and reg.stats["tape"].errors == 0
