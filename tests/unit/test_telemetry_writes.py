"""telemetry's metric writes per batch (issue 9): bound label children, gauge sets and
counts applied once at the end of a batch, leaving what writes per message would."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from services.telemetry import metrics as tm
from services.telemetry.service import Telemetry
from shared.bus import Entry, Outbox
from shared.messages import Message, RiskDecision, Signal
from shared.testing import Harness

pytestmark = pytest.mark.monitoring

T0 = 1_700_000_000 * 10**9


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_label_cache_gives_the_metrics_own_children() -> None:
    cache = tm.LabelCache()
    child = cache(tm.MODEL_WEIGHT, "CACHE-X", "m1")
    assert child is tm.MODEL_WEIGHT.labels("CACHE-X", "m1")
    assert cache(tm.MODEL_WEIGHT, "CACHE-X", "m1") is child
    assert cache(tm.MODEL_WEIGHT, "CACHE-X", "m2") is not child


def test_batch_writes_land_at_flush_last_gauge_value_and_every_count() -> None:
    writes = tm.BatchWrites(tm.LabelCache())
    before = value("orders_total", symbol="BW-X", side="buy")
    for v in (1.0, 3.0, 2.0):
        writes.set(tm.CONSENSUS_SCORE, v, "BW-X")
        writes.count(tm.ORDERS_TOTAL, "BW-X", "buy")
    assert value("orders_total", symbol="BW-X", side="buy") == before  # not yet
    writes.flush()
    assert value("consensus_score", symbol="BW-X") == 2.0
    assert value("orders_total", symbol="BW-X", side="buy") == before + 3
    writes.count(tm.ORDERS_TOTAL, "BW-X", "buy")
    writes.discard()
    writes.flush()
    assert value("orders_total", symbol="BW-X", side="buy") == before + 3


def _decision(symbol: str, edge: float, state: str, pvar: float) -> RiskDecision:
    return RiskDecision(
        symbol=symbol,
        ts_ns=T0,
        action="reject",
        reason="edge_below_costs:detail",
        trading_state=state,  # type: ignore[arg-type]
        edge_blended_bps=edge,
        portfolio_var_pct=pvar,
    )


def _batch(svc: Telemetry, msgs: list[Message]) -> None:
    """``msgs`` as one batch of telemetry, through the in-memory harness."""
    h = Harness([svc])
    for msg in msgs:
        h.feed(msg.STREAM, [msg])
    h.run()


def test_a_batch_leaves_the_values_of_writes_per_message() -> None:
    svc = Telemetry()
    n0 = value("risk_decisions_total", action="reject", reason="edge_below_costs")
    s0 = value("signals_total", model_id="consensus", shadow="0")
    sig = Signal(
        symbol="TW-A",
        ts_ns=T0,
        model_id="consensus",
        horizon="1m",
        edge_bps=4.0,
        confidence=0.5,
        consensus_score=0.25,
        votes={"m1": {"weight": 0.75}, "m2": {"weight": 0.25}},
    )
    _batch(
        svc,
        [
            sig,
            _decision("TW-A", 1.0, "ACTIVE", 0.5),
            _decision("TW-B", 2.0, "ACTIVE", 0.25),
            _decision("TW-A", 3.0, "REDUCING", 0.75),
        ],
    )
    assert value("risk_decisions_total", action="reject", reason="edge_below_costs") == n0 + 3
    assert value("signals_total", model_id="consensus", shadow="0") == s0 + 1
    assert value("edge_blended_bps", symbol="TW-A") == 3.0  # the last one per series
    assert value("edge_blended_bps", symbol="TW-B") == 2.0
    assert value("var_pct", symbol="portfolio") == 0.75
    assert value("consensus_score", symbol="TW-A") == 0.25
    assert value("model_weight", symbol="TW-A", model_id="m1") == 0.75
    assert value("trading_state", state="REDUCING") == 1.0
    assert value("trading_state", state="ACTIVE") == 0.0
    assert svc.gauges[("edge_blended_bps", "TW-A")] == 3.0  # what the time series samples
    # the state written only when it changes, but always as the decisions say
    _batch(svc, [_decision("TW-A", 0.0, "REDUCING", 0.5)])
    assert value("trading_state", state="REDUCING") == 1.0
    _batch(svc, [_decision("TW-A", 0.0, "HALTED", 0.5)])
    assert value("trading_state", state="HALTED") == 1.0
    assert value("trading_state", state="REDUCING") == 0.0


def test_a_failed_batch_is_counted_once_when_handled_again() -> None:
    svc = Telemetry()
    n0 = value("risk_decisions_total", action="reject", reason="edge_below_costs")
    msgs = [_decision("TW-C", 1.0, "ACTIVE", 0.5), _decision("TW-C", 2.0, "ACTIVE", 0.5)]
    out = Outbox()
    svc.on_message(Entry(msgs[0].STREAM, "1-0", {}, msgs[0]), out)
    # ... the handler raised here: the runtime leaves the batch pending and says so
    asyncio.run(svc.on_batch_failed())
    _batch(svc, msgs)
    assert value("risk_decisions_total", action="reject", reason="edge_below_costs") == n0 + 2
