"""The hot path's lean connection (shared.wire) and the consume loop's pipelined
commit + next read, against a real Redis."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.bus import Bus, Entry, Outbox
from shared.config import BusSettings
from shared.messages import MD_TICKS, SIGNALS, Signal, Tick
from shared.wire import Recorder, Wire, raise_errors

pytestmark = pytest.mark.integration


def tick(i: int) -> Tick:
    return Tick(symbol="BTC-USD", ts_ns=1_000 + i, bid=100.0, ask=100.5, bid_size=1, ask_size=1)


async def test_replies_match_their_requests_when_many_tasks_share_a_connection(r: Redis) -> None:
    wire = Wire(r)
    replies = await asyncio.gather(*(wire.call("ECHO", f"m{i}") for i in range(200)))
    assert replies == [f"m{i}" for i in range(200)]
    wire.close()


async def test_error_replies_raise_redis_py_exceptions(r: Redis) -> None:
    wire = Wire(r)
    with pytest.raises(NoScriptError):
        await wire.call("EVALSHA", "0" * 40, 0)
    with pytest.raises(ResponseError, match="unknown command"):
        await wire.call("NOSUCHCOMMAND")
    assert await wire.call("PING") == "PONG"  # the connection is still in step
    replies = await wire.send([("SET", "wire:k", "1"), ("INCR", "wire:nothere:x", "y")])
    with pytest.raises(ResponseError):
        raise_errors(replies)
    assert replies[0] == "OK"
    wire.close()


async def test_a_killed_connection_raises_connection_error_then_reconnects(r: Redis) -> None:
    wire = Wire(r)
    await wire.call("CLIENT", "SETNAME", "wire-victim")
    blocked = asyncio.ensure_future(wire.call("BLPOP", "wire:never", 5))
    await asyncio.sleep(0)  # the request is written before the kill
    victims = [c for c in await r.client_list() if c.get("name") == "wire-victim"]
    assert len(victims) == 1
    await r.client_kill_filter(_id=victims[0]["id"])
    with pytest.raises(RedisConnectionError):
        await blocked
    assert await wire.call("PING") == "PONG"
    wire.close()


async def test_no_reply_in_time_raises_timeout_and_the_next_call_works(r: Redis) -> None:
    wire = Wire(r, timeout_s=0.2)
    with pytest.raises(RedisTimeoutError):
        await wire.call("BLPOP", "wire:never", 2)
    assert await wire.call("PING") == "PONG"
    wire.close()


async def test_recorded_redis_py_calls_become_commands() -> None:
    rec = Recorder()
    rec.hset("h", mapping={"a": 1, "b": "x"})
    rec.publish("chan", b"note")
    rec.eval("return 1", 1, "k", "arg")
    assert rec.commands == [
        ("HSET", "h", "a", 1, "b", "x"),
        ("PUBLISH", "chan", b"note"),
        ("EVAL", "return 1", 1, "k", "arg"),
    ]


async def one_read(r: Redis, group: str, block_ms: int) -> tuple[Bus, Entry, Outbox]:
    """A bus that has read one tick, and an outbox with one signal for it."""
    bus = Bus(r, group, (MD_TICKS,), BusSettings(block_ms=block_ms))
    await bus.ensure_groups()
    await bus.publish([tick(0)])
    [first] = await bus.read()
    out = Outbox()
    out.emit(
        Signal(symbol="BTC-USD", ts_ns=1, model_id="m", horizon="1m", edge_bps=1.0, confidence=0.5)
    )
    return bus, first, out


async def test_a_commit_sends_the_next_read_which_returns_later_entries(r: Redis) -> None:
    bus, first, out = await one_read(r, "wiretest", 2_000)
    await bus.commit(out, [first], prefetch=True)
    # committed: the output is written and the input acknowledged ...
    assert await r.xlen(SIGNALS) == 1
    assert (await r.xpending(MD_TICKS, "wiretest"))["pending"] == 0
    # ... and the next read is already waiting in Redis: a tick published now arrives
    assert bus.prefetched is not None
    await bus.publish([tick(1)])
    [second] = await asyncio.wait_for(bus.read(), 5)
    assert second.message is not None and second.message.ts_ns == 1_001
    assert bus.prefetched is None
    bus.close()


async def test_a_failed_commit_writes_nothing_and_drops_the_read_sent_with_it(r: Redis) -> None:
    bus, first, out = await one_read(r, "wiretest2", 200)
    out.call(lambda pipe: pipe.execute_command("SET", "wire:k"))  # wrong arity: EXECABORT
    with pytest.raises(ResponseError):
        await bus.commit(out, [first], prefetch=True)
    assert bus.prefetched is None
    assert await r.xlen(SIGNALS) == 0
    assert (await r.xpending(MD_TICKS, "wiretest2"))["pending"] == 1
    [again] = await bus.read(own_pending=True)
    assert again.entry_id == first.entry_id
    bus.close()


async def test_publish_now_writes_before_returning_and_lands_in_call_order(r: Redis) -> None:
    bus = Bus(r, "wiretest3", (), BusSettings())
    first = bus.publish_now([tick(0)])  # not connected yet: written when awaited
    await first()
    assert await r.xlen(MD_TICKS) == 1
    later = [bus.publish_now([tick(i)]) for i in range(1, 6)]
    # written already, before anything was awaited: Redis has them or is appending them
    for landed in later:
        await landed()
    ts = [int(f["ts_ns"]) for _, f in await r.xrange(MD_TICKS)]
    assert ts == [1_000 + i for i in range(6)]
    await r.script_flush()  # Redis forgets the commit script: EVAL caches it again
    await bus.publish_now([tick(6)])()
    assert await r.xlen(MD_TICKS) == 7
    bus.close()
