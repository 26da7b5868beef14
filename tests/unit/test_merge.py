"""The event-time merge (shared/merge.py): order, watermarks, lookahead, dead upstreams."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.merge import NEVER, TIMER, EventMerge

# Risk's shape: two streams of one producer, then two of others.
STREAMS = ("fills", "rejections", "md.ticks", "signals")
UP = {
    "fills": "execution",
    "rejections": "execution",
    "md.ticks": "feature_bus",
    "signals": "model_router",
}


def released(m: EventMerge, timer: int | None = None) -> list[tuple[int, object]]:
    return list(m.drain((lambda: timer) if timer is not None else None))


def test_nothing_is_released_before_every_producer_has_passed_its_time() -> None:
    m = EventMerge(STREAMS, UP)
    m.push("signals", 100, "s100")
    m.advance("model_router", 100)
    m.advance("feature_bus", 100)
    assert released(m) == []  # execution may still send a fill at <= 100
    m.advance("execution", 99)  # a fill at 100 would sort before a signal at 100
    assert released(m) == []
    m.advance("execution", 100)
    assert released(m) == [(100, "s100")]


def test_at_equal_times_a_lower_rank_comes_first_and_a_higher_one_need_not_be_waited_for() -> None:
    m = EventMerge(STREAMS, UP)
    m.push("md.ticks", 100, "t100")
    m.push("signals", 100, "s100")
    m.push("fills", 100, "f100")
    m.advance("execution", 100)
    m.advance("feature_bus", 100)
    # signals complete only through 99: a later signal at 100 would sort after the tick
    # at 100 (higher rank) and after the buffered signal at 100 (its stream's order)
    m.advance("model_router", 99)
    assert released(m) == [(100, "f100"), (100, "t100"), (100, "s100")]
    m.push("md.ticks", 100, "t100b")
    m.push("fills", 101, "f101")
    m.advance("feature_bus", 99)  # no-op: watermarks never move back
    assert released(m) == [(100, "t100b")]  # f101 waits: execution only through 100


def test_within_a_stream_entries_keep_their_order_at_equal_times() -> None:
    m = EventMerge(("md.ticks",), {"md.ticks": "feature_bus"})
    for name in ("a", "b", "c"):
        m.push("md.ticks", 5, name)
    m.advance("feature_bus", 4)  # later entries of the stream at 5 come after these
    assert [x for _, x in released(m)] == ["a", "b", "c"]


def test_a_timer_fires_after_the_entries_of_its_time_and_before_later_ones() -> None:
    m = EventMerge(("md.ticks", "orders"), {"md.ticks": "fb", "orders": "risk"})
    m.push("md.ticks", 10, "t10")
    m.push("md.ticks", 12, "t12")
    m.advance("fb", 20)
    m.advance("risk", 20)
    out = released(m, timer=10)
    assert out == [(10, "t10"), (10, TIMER), (12, "t12")]


def test_a_forced_producer_holds_nothing_back_and_its_late_entries_are_counted() -> None:
    m = EventMerge(STREAMS, UP)
    m.push("signals", 100, "s")
    m.advance("model_router", 100)
    m.advance("feature_bus", 100)
    m.forced.add("execution")
    assert released(m) == [(100, "s")]
    m.forced.discard("execution")
    m.advance("execution", 100)
    m.push("fills", 50, "late fill")
    assert released(m) == [(50, "late fill")]
    assert m.late == 1


def test_out_watermark_uses_the_next_input_plus_lookahead() -> None:
    # execution: ticks cause nothing (None), orders come back after 2 ns of latency
    m = EventMerge(("md.ticks", "orders"), {"md.ticks": "fb", "orders": "risk"})
    m.advance("fb", 1_000)
    m.advance("risk", 100)
    la = {"md.ticks": None, "orders": 2}
    assert m.out_wm(la.get) == 100 + 1 + 2 - 1
    m.push("orders", 50, "o")  # a held order at 50: its outputs no earlier than 52
    assert m.out_wm(la.get) == 51
    assert m.out_wm(la.get, timer_ns=40) == 39
    assert EventMerge(("x",), {"x": "p"}).out_wm(lambda s: None) == NEVER - 1


def test_a_key_is_held_once() -> None:
    m = EventMerge(("x",), {"x": "p"})
    assert m.push("x", 1, "a", key=("x", "1-0"))
    assert not m.push("x", 1, "a again", key=("x", "1-0"))
    assert m.holds(("x", "1-0")) and len(m) == 1


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(STREAMS), st.integers(0, 30)), min_size=1, max_size=60),
    st.integers(0, 2**32),
)
def test_the_release_order_does_not_depend_on_arrival_or_watermark_timing(
    entries: list[tuple[str, int]], seed: int
) -> None:
    """Per stream the entries come in time order (as producers write them), each
    producer's watermark trails what it sent; however the streams interleave and
    whenever the watermarks arrive, the releases concatenate to one global order."""
    per_stream: dict[str, list[tuple[int, str]]] = {s: [] for s in STREAMS}
    for i, (stream, ts) in enumerate(entries):
        per_stream[stream].append((ts, f"{stream}#{i}"))
    for items in per_stream.values():
        items.sort(key=lambda x: x[0])

    def run(rng: random.Random) -> list[object]:
        m = EventMerge(STREAMS, UP)
        queues = {s: list(items) for s, items in per_stream.items()}
        sent: dict[str, int] = {p: -1 for p in set(UP.values())}
        out: list[object] = []
        while any(queues.values()):
            s = rng.choice([s for s in STREAMS if queues[s]])
            ts, name = queues[s].pop(0)
            m.push(s, ts, name)
            p = UP[s]
            sent[p] = max(sent[p], ts)
            if rng.random() < 0.5:  # a watermark: complete up to before its next entry
                nxt = [q[0][0] for t, q in queues.items() if UP[t] == p and q]
                m.advance(p, (min(nxt) - 1) if nxt else sent[p])
            out.extend(x for _, x in released(m))
        for p in sent:
            m.advance(p, 10**6)
        out.extend(x for _, x in released(m))
        assert m.late == 0
        return out

    first = run(random.Random(seed))
    assert sorted(first, key=str) == sorted((n for v in per_stream.values() for _, n in v), key=str)
    for k in range(3):
        assert run(random.Random(seed + 1 + k)) == first
