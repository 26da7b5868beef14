"""Gate counterfactuals (services/calibration/counterfactuals.py): the hand-worked example of
docs/governors.md, the marks' horizon, bounded memory."""

from __future__ import annotations

import pytest

from services.calibration.counterfactuals import GateCounterfactuals


def worked() -> tuple[GateCounterfactuals, int]:
    """docs/governors.md's example: horizon 10 ns, a 10 bps round-trip cost."""
    cf = GateCounterfactuals(horizon_ns=10, cost_bps=10.0, min_resolved=2)
    cf.record_blocked("cost", 0, "BTC-USD", "long", 1000.0, 100.0)
    cf.record_blocked("meta", 2, "BTC-USD", "short", 500.0, 100.0)
    late = cf.record_blocked("meta", 3, "BTC-USD", +1, 500.0, 100.0)
    cf.record_blocked("cost", 5, "ETH-USD", "sell", 2000.0, 50.0)
    return cf, late


def test_hand_worked_example() -> None:
    cf, late = worked()
    # BTC at 95 at t=10: only the trade blocked at t=0 is a horizon old
    assert cf.mark("BTC-USD", 10, 95.0) == 1  # long 1000: -50 - 1 = -51
    assert cf.mark("BTC-USD", 12, 103.0) == 1  # short 500 from t=2: -15 - 0.5 = -15.5
    assert cf.resolve(late, 101.0) == pytest.approx(4.5)  # long 500: +5 - 0.5
    assert cf.mark("ETH-USD", 14, 49.0) == 0  # blocked at 5: not a horizon old yet
    assert cf.mark("ETH-USD", 15, 49.0) == 1  # short 2000: +40 - 2 = 38
    assert cf.pending == 0
    s = cf.summary()
    assert s["cost"]["saved_usd"] == pytest.approx(51.0)
    assert s["cost"]["missed_usd"] == pytest.approx(38.0)
    assert s["cost"]["net_usd"] == pytest.approx(13.0)
    assert (s["cost"]["would_win"], s["cost"]["would_lose"]) == (1, 1)
    assert s["meta"]["saved_usd"] == pytest.approx(15.5)
    assert s["meta"]["missed_usd"] == pytest.approx(4.5)
    assert s["meta"]["net_usd"] == pytest.approx(11.0)
    # cost: net > 0 but 51 < 3 x 38 -> keep; meta: 15.5 >= 3 x 4.5 -> tighten
    assert cf.suggest("cost").startswith("keep cost: 2 blocked, 2 resolved")
    assert "net $13.00" in cf.suggest("cost")
    assert cf.suggest("meta").startswith("tighten meta:")
    assert "saved $15.50, missed $4.50, net $11.00" in cf.suggest("meta")


def test_a_gate_that_blocks_winners_is_loosened() -> None:
    cf = GateCounterfactuals(horizon_ns=0, cost_bps=10.0, min_resolved=2)
    a = cf.record_blocked("vol", 1, "AAPL", "long", 1000.0, 100.0)
    b = cf.record_blocked("vol", 1, "AAPL", "short", 1000.0, 100.0)
    assert cf.resolve(a, 110.0) == pytest.approx(99.0)
    assert cf.resolve(b, 101.0) == pytest.approx(-11.0)
    assert cf.value("vol").net_usd == pytest.approx(11.0 - 99.0)
    assert cf.suggest("vol").startswith("loosen vol:")
    assert cf.resolve(a, 120.0) is None  # resolved once


def test_few_resolved_or_unknown_gate_keeps() -> None:
    cf = GateCounterfactuals(min_resolved=20)
    assert cf.suggest("nothing").startswith("keep nothing: 0 blocked")
    t = cf.record_blocked("cost", 0, "X", 1, 100.0, 10.0)
    cf.resolve(t, 5.0)
    assert "fewer than 20 resolved" in cf.suggest("cost")


def test_memory_is_bounded() -> None:
    cf = GateCounterfactuals(horizon_ns=0, max_pending=3)
    for i in range(5):
        cf.record_blocked("cost", i, "X", 1, 100.0, 10.0)
    assert cf.pending == 3
    assert cf.value("cost").expired == 2
    assert cf.mark("X", 100, 11.0) == 3  # the two dropped are skipped
    assert cf.value("cost").resolved == 3
    assert cf.value("cost").missed_usd == pytest.approx(30.0)


def test_rejects_bad_inputs() -> None:
    cf = GateCounterfactuals()
    with pytest.raises(ValueError, match="direction"):
        cf.record_blocked("g", 0, "X", 0, 1.0, 1.0)
    with pytest.raises(ValueError, match="entry_price"):
        cf.record_blocked("g", 0, "X", 1, 1.0, 0.0)
    with pytest.raises(ValueError, match="exit_price"):
        cf.resolve(0, float("nan"))
