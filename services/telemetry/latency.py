"""Per-hop latency from trace timestamps and Redis entry ids; pure, no I/O.

Every entry carries ``trace_ts_ns``, the originating tick's wall-clock time (seed 000
§4 as quoted in issue 8). A Redis entry id ``<ms>-<seq>`` is the time the entry was
written, in ms, taken from the Redis server's clock. So for the entries of one trace
(the signal, order and fill that share a ``trace_ts_ns``), the hops are:

    tick_to_signal = signal_ms - trace      (feature_bus + model_router)
    signal_to_order = order_ms - signal_ms  (risk_harmoniser)
    order_to_fill  = fill_ms - order_ms     (execution)
    fill_to_telemetry = seen - fill_ms      (telemetry's own read delay)

Resolution is 1 ms (entry ids); tick_to_fill itself uses the ns trace time and the
telemetry clock. Hops are clamped at 0: clocks of different hosts may disagree.
"""

from __future__ import annotations

HOPS = ("tick_to_signal", "signal_to_order", "order_to_fill", "fill_to_telemetry")


def entry_ms(entry_id: str) -> int | None:
    """The write time (ms) of a Redis stream entry id, None if it is not ``<ms>-<seq>``."""
    head, _, _ = entry_id.partition("-")
    return int(head) if head.isdigit() else None


def hops_s(
    trace_ts_ns: int,
    signal_ms: int | None,
    order_ms: int | None,
    fill_ms: int | None,
    seen_ns: int,
) -> dict[str, float]:
    """Seconds per hop for the stamps that are known (a missing stamp drops its hops).

    Differences are taken in integer ns, so epoch-sized stamps lose no precision."""
    points: list[int | None] = [
        trace_ts_ns or None,
        signal_ms * 1_000_000 if signal_ms is not None else None,
        order_ms * 1_000_000 if order_ms is not None else None,
        fill_ms * 1_000_000 if fill_ms is not None else None,
        seen_ns,
    ]
    out: dict[str, float] = {}
    for hop, a, b in zip(HOPS, points, points[1:], strict=False):
        if a is not None and b is not None:
            out[hop] = max(0, b - a) / 1e9
    return out
