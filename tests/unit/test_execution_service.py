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
