"""Calibration in the pipeline (issue 19 items 1-2): model_router sends the calibrated
consensus confidence once a regime's calibrator has enough outcomes, and risk applies
seed 001 §5's confidence levels to it, with the level on every decision."""

from __future__ import annotations

import pytest

from services.model_router.router import CONSENSUS_ID, Router
from services.risk_harmoniser.breakers import DAY_NS
from services.risk_harmoniser.config import RiskParams
from services.risk_harmoniser.engine import RiskEngine
from shared.config import validate
from shared.control import TradingState
from shared.messages import Signal

T0 = 19_000 * DAY_NS + 3600 * 10**9
ACTIVE = TradingState()


def router(**calibration: object) -> Router:
    rules = validate(
        "model_router",
        {
            "validation": {"required": False},
            "calibration": {"min_outcomes": 100, "half_life": None, **calibration},
            "rules": [{"pattern": "*", "horizon": "1m", "models": [{"id": "book_pressure"}]}],
        },
    )
    return Router(rules)  # type: ignore[arg-type]


def test_an_overconfident_consensus_is_calibrated_down_once_it_has_the_outcomes() -> None:
    r = router()
    # The consensus says p = 0.8 (confidence 0.6) and is right half the time.
    for i in range(99):
        r._calibrate(CONSENSUS_ID, "TREND", 0.8, i % 2 == 0)
    assert r.calibrated(CONSENSUS_ID, "TREND", 0.6) == 0.6  # 99 < min_outcomes: raw
    r._calibrate(CONSENSUS_ID, "TREND", 0.8, False)
    cal = r.calibrated(CONSENSUS_ID, "TREND", 0.6)
    # bucket (0.7, 0.8]: half right, so p' is about 0.5 (the prior pulls it a little toward
    # 0.8): the calibrated confidence is near 0, far below the raw 0.6
    assert 0.0 < cal < 0.05
    assert r.calibrated(CONSENSUS_ID, "RANGE", 0.6) == 0.6  # per regime: none there yet
    assert r.ece(CONSENSUS_ID) == pytest.approx(0.3, abs=1e-9)  # |50 - 80| / 100
    # persisted with the router's state
    again = router()
    again.load(r.dump())
    assert again.calibrated(CONSENSUS_ID, "TREND", 0.6) == pytest.approx(cal)


def test_calibration_off_sends_the_raw_confidence() -> None:
    r = router(enabled=False)
    for i in range(200):
        r._calibrate(CONSENSUS_ID, "TREND", 0.8, i % 2 == 0)
    assert r.calibrated(CONSENSUS_ID, "TREND", 0.6) == 0.6


def _engine(**over: object) -> RiskEngine:
    eng = RiskEngine(RiskParams(**over))  # type: ignore[arg-type]
    eng.on_tick("BTC-USD", 64_999.0, 65_001.0, 3.0, 3.0, 1.0, T0, ACTIVE)
    return eng


def _sig(conf: float, ts: int = T0) -> Signal:
    return Signal(
        symbol="BTC-USD",
        ts_ns=ts,
        model_id="consensus",
        horizon="1m",
        edge_bps=100.0,
        confidence=conf,
        mid=65_000.0,
    )


@pytest.mark.parametrize(
    ("conf", "level"),
    [(0.05, "LOW"), (0.2, "MEDIUM"), (0.5, "HIGH"), (0.8, "VERY_HIGH")],
)
def test_each_level_is_on_the_decision(conf: float, level: str) -> None:
    d = _engine().on_signal(_sig(conf), ACTIVE)
    assert d is not None and d.confidence_level == level
    if level == "LOW":  # p = 0.525: paper only, nothing opens
        assert (d.action, d.reason) == ("reject", "confidence:LOW")
    else:
        assert d.action == "order"


def test_the_levels_scale_the_size_and_can_be_turned_off() -> None:
    sized = {
        conf: _engine().on_signal(_sig(conf), ACTIVE).target_usd  # type: ignore[union-attr]
        for conf in (0.2, 0.5, 0.8)
    }
    off = {
        conf: _engine(confidence_levels={"enabled": False}).on_signal(_sig(conf), ACTIVE).target_usd  # type: ignore[union-attr]
        for conf in (0.2, 0.5, 0.8)
    }
    # MEDIUM half, HIGH as without levels, VERY_HIGH a quarter more (unless a cap binds)
    assert sized[0.2] == pytest.approx(0.5 * off[0.2])
    assert sized[0.5] == pytest.approx(off[0.5])
    assert off[0.8] <= sized[0.8] <= 1.25 * off[0.8] + 1e-6


def test_a_low_confidence_signal_still_lets_a_position_be_reduced() -> None:
    eng = _engine()
    opened = eng.on_signal(_sig(0.5), ACTIVE)
    assert opened is not None and opened.action == "order"
    eng.on_fill("f1", opened.order_id, "BTC-USD", opened.qty, 65_000.0, 0.0, T0 + 1)
    against = Signal(
        symbol="BTC-USD",
        ts_ns=T0 + 2 * 10**9,
        model_id="consensus",
        horizon="1m",
        edge_bps=-60.0,
        confidence=0.05,
        mid=65_000.0,
    )
    d = eng.on_signal(against, ACTIVE)
    assert d is not None and d.confidence_level == "LOW"
    assert d.action == "order" and d.side == "sell" and d.target_usd >= 0.0


def test_the_consensus_edge_carries_a_conformal_interval_after_enough_calls() -> None:
    r = router()
    assert r.edge_interval("1m", "TREND", 10.0) == (None, None)
    for i in range(8):  # alpha 0.1: 9 scores are needed for a finite quantile
        r._conformal("1m", "TREND", 10.0, 10.0 + (i + 1))
    assert r.edge_interval("1m", "TREND", 10.0) == (None, None)
    r._conformal("1m", "TREND", 10.0, 19.0)  # scores 1..9: q = the 9th smallest = 9
    assert r.edge_interval("1m", "TREND", 5.0) == (-4.0, 14.0)
    again = router()
    again.load(r.dump())
    assert again.edge_interval("1m", "TREND", 5.0) == (-4.0, 14.0)


def test_the_runner_gate_opens_only_when_the_pessimistic_edge_beats_costs() -> None:
    def sig(low: float | None, high: float | None) -> Signal:
        return _sig(0.5).model_copy(update={"edge_low_bps": low, "edge_high_bps": high})

    on = {"conformal_gate": {"enabled": True}}
    wide = _engine(**on).on_signal(sig(-20.0, 220.0), ACTIVE)
    assert wide is not None and wide.action == "reject"
    assert wide.reason == "conformal:pessimistic_edge"
    none = _engine(**on).on_signal(sig(None, None), ACTIVE)  # no interval yet: no runner
    assert none is not None and none.reason == "conformal:pessimistic_edge"
    tight = _engine(**on).on_signal(sig(90.0, 110.0), ACTIVE)
    assert tight is not None and tight.action == "order"
    off = _engine().on_signal(sig(-20.0, 220.0), ACTIVE)  # off by default
    assert off is not None and off.action == "order"


def test_a_refused_new_position_is_a_counterfactual_resolved_one_hold_later() -> None:
    eng = _engine()
    d = eng.on_signal(_sig(0.05), ACTIVE)  # LOW: refused
    assert d is not None and d.reason == "confidence:LOW"
    assert eng.counterfactuals.pending == 1
    hold_ns = int(eng.p.costs.default_hold_s * 1e9)
    # the market goes up 1 %: the refused long would have made money (missed)
    eng.on_tick("BTC-USD", 65_649.0, 65_651.0, 3.0, 3.0, 1.0, T0 + hold_ns, ACTIVE)
    v = eng.counterfactuals.value("confidence:LOW")
    assert eng.counterfactuals.pending == 0
    assert v.blocked == 1 and v.saved_usd == 0.0
    assert v.missed_usd == pytest.approx(eng._full_usd * 0.01, rel=1e-9)
    # an order is not a counterfactual; neither is a weak edge below costs
    eng2 = _engine()
    assert eng2.on_signal(_sig(0.5), ACTIVE).action == "order"  # type: ignore[union-attr]
    assert eng2.counterfactuals.pending == 0
