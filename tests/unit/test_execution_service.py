"""The service shell without Redis: each batch's outputs reach the outbox exactly once."""

from __future__ import annotations

from services.execution.service import Execution
from shared.messages import FILLS
from shared.testing import Harness
from tests.support import feed_in_order
from tests.unit.test_execution_engine import MS, T0, cfg, order, tick


def test_outputs_are_flushed_once_per_batch_when_driven_in_process() -> None:
    svc = Execution(cfg())
    h = Harness([svc])
    # Batches of one; the order's arrival timer (3 ms) fires in the batch of the 10 ms
    # tick, the first that takes event time past it.
    feed_in_order(h, (tick(0), order(1), tick(10)))
    assert len(h.out[FILLS]) == 1
    # Later batches, one with a tick and one with only watermarks (nothing released),
    # must not write the fill again.
    feed_in_order(h, (tick(20),))
    h.watermark("feature_bus", T0 + 30 * MS)
    h.run()
    out = h.step(svc, [])  # an empty batch (the in-process bench drives it like this)
    assert [s for s, _ in out.messages].count(FILLS) == 0
    assert len(h.out[FILLS]) == 1


def test_pnl_gauges_follow_the_books_after_every_batch() -> None:
    from prometheus_client import REGISTRY

    svc = Execution(cfg())
    h = Harness([svc])
    for msg in (tick(0), order(1), tick(10)):
        feed_in_order(h, (msg,))  # one batch each, committed by the harness
        for symbol, book in svc.engine.books.items():
            got = REGISTRY.get_sample_value("edgebus_execution_pnl_usd", {"symbol": symbol})
            assert got == book.total_pnl_usd
    assert svc.engine.books  # the order filled: there was a book to follow
