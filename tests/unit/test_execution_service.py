"""The service shell without Redis: each batch's outputs reach the outbox exactly once."""

from __future__ import annotations

from services.execution.service import Execution
from shared.bus import Entry, Outbox
from shared.messages import FILLS
from tests.unit.test_execution_engine import cfg, order, tick


def test_outputs_are_flushed_once_per_batch_when_driven_in_process() -> None:
    svc = Execution(cfg())
    first, second = Outbox(), Outbox()
    for i, msg in enumerate((tick(0), order(1), tick(10))):
        svc.on_message(Entry(msg.STREAM, f"{i}-0", {}, msg), first)
    svc.on_batch_end(first)
    svc.on_batch_end(second)  # an empty batch (the in-process bench drives it like this)
    assert [s for s, _ in first.messages].count(FILLS) == 1
    assert [s for s, _ in second.messages].count(FILLS) == 0


def test_pnl_gauges_follow_the_books_after_every_batch() -> None:
    from prometheus_client import REGISTRY

    svc = Execution(cfg())
    for i, msg in enumerate((tick(0), order(1), tick(10))):
        out = Outbox()
        svc.on_message(Entry(msg.STREAM, f"{i}-0", {}, msg), out)
        svc.on_batch_end(out)
        svc.on_committed()
        for symbol, book in svc.engine.books.items():
            got = REGISTRY.get_sample_value("edgebus_execution_pnl_usd", {"symbol": symbol})
            assert got == book.total_pnl_usd
    assert svc.engine.books  # the order filled: there was a book to follow
