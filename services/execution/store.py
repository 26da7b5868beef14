"""execution's durable state in Redis: written with the outputs, read back at start.

Everything an ``Outputs`` changed is queued into the batch's MULTI/EXEC (``Outbox.call``),
so fills, working orders, positions and the dedupe record land together or not at all:
a kill -9 at any point loses nothing and doubles nothing.

Keys:
- ``edgebus:execution:positions``   hash  symbol -> PositionBook JSON
- ``edgebus:execution:working``     hash  order_id -> WorkingOrder JSON
- ``edgebus:execution:orders_done`` hash  order_id -> filled / cancelled / rejected
- ``edgebus:execution:orders_done_ts`` zset order_id -> decision ts_ns (trims the above)
- ``edgebus:execution:fill_seq``    hash  order_id -> last fill sequence number written
- ``edgebus:execution:account``     hash  day, day_start_pnl_usd
- ``edgebus:execution:equity``      stream ts_ns, equity_usd, total_pnl_usd, daily_pnl_usd
"""

from __future__ import annotations

from functools import partial
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from services.execution.engine import ExecutionEngine, Outputs
from services.execution.positions import PositionBook
from services.execution.strategies import WorkingOrder
from shared.bus import Outbox
from shared.config import KEY_PREFIX
from shared.messages import FILLS, MD_TICKS, DecodeError, Tick

BASE = f"{KEY_PREFIX}:execution"
POSITIONS_KEY = f"{BASE}:positions"
WORKING_KEY = f"{BASE}:working"
ORDERS_DONE_KEY = f"{BASE}:orders_done"
DONE_INDEX_KEY = f"{BASE}:orders_done_ts"
FILL_SEQ_KEY = f"{BASE}:fill_seq"
ACCOUNT_KEY = f"{BASE}:account"
EQUITY_KEY = f"{BASE}:equity"

# The batch's fills were XADDed just before this runs, in the same MULTI/EXEC (nothing
# interleaves). A fill whose sequence number is not new for its order was already
# written (a second replica, or a redelivery racing a slow consumer): delete this copy,
# found among the ARGV[1] newest entries (exactly this batch's fills). Readers never see
# it: the transaction is atomic. Otherwise record the sequence number.
DEDUPE_FILLS = """
local recent = nil
local removed = 0
for i = 2, #ARGV, 3 do
  local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  local seq = tonumber(ARGV[i + 1])
  if cur >= seq then
    if not recent then
      recent = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', ARGV[1])
    end
    for _, e in ipairs(recent) do
      local f = e[2]
      for j = 1, #f, 2 do
        if f[j] == 'fill_id' and f[j + 1] == ARGV[i + 2] then
          redis.call('XDEL', KEYS[2], e[1])
          removed = removed + 1
        end
      end
    end
  else
    redis.call('HSET', KEYS[1], ARGV[i], seq)
  end
end
return removed
"""

# Keep the dedupe record bounded: drop the oldest orders beyond ARGV[1].
TRIM_DONE = """
local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[1])
if excess <= 0 then return 0 end
local ids = redis.call('ZRANGE', KEYS[1], 0, excess - 1)
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, excess - 1)
for i = 1, #ids, 500 do
  local chunk = {unpack(ids, i, math.min(i + 499, #ids))}
  redis.call('HDEL', KEYS[2], unpack(chunk))
  redis.call('HDEL', KEYS[3], unpack(chunk))
end
return #ids
"""


def queue_writes(o: Outputs, engine: ExecutionEngine, out: Outbox, maxlen: int) -> None:
    """Queue everything ``o`` changed into the batch's transaction."""
    if o.fills:
        args: list[Any] = [len(o.fills)]
        for f in o.fills:
            out.emit(f)
            args += [f.order_id, f.fill_seq, f.fill_id]
        out.call(partial(_eval, DEDUPE_FILLS, (FILL_SEQ_KEY, FILLS), tuple(args)))
    for rej in o.rejections:
        out.emit(rej)
    for pos in o.positions:
        out.emit(pos)
    if o.working_put:
        working: dict[Any, Any] = {k: orjson.dumps(w.as_dict()) for k, w in o.working_put.items()}
        out.call(lambda p: p.hset(WORKING_KEY, mapping=working))
    if o.working_del:
        gone = list(o.working_del)
        out.call(lambda p: p.hdel(WORKING_KEY, *gone))
    if o.done:
        outcomes: dict[Any, Any] = {k: v[0] for k, v in o.done.items()}
        scores: dict[Any, Any] = {k: v[1] for k, v in o.done.items()}
        limit = engine.cfg.done_orders_max
        out.call(lambda p: p.hset(ORDERS_DONE_KEY, mapping=outcomes))
        out.call(lambda p: p.zadd(DONE_INDEX_KEY, scores))
        keys = (DONE_INDEX_KEY, ORDERS_DONE_KEY, FILL_SEQ_KEY)
        out.call(partial(_eval, TRIM_DONE, keys, (limit,)))
    if o.books:
        books: dict[Any, Any] = {s: orjson.dumps(engine.books[s].as_dict()) for s in o.books}
        out.call(lambda p: p.hset(POSITIONS_KEY, mapping=books))
    if o.account_changed:
        acct: dict[Any, Any] = {
            "day": engine.account.day,
            "day_start_pnl_usd": engine.account.day_start_pnl_usd,
        }
        out.call(lambda p: p.hset(ACCOUNT_KEY, mapping=acct))
    for point in o.equity:
        out.call(partial(_xadd_capped, EQUITY_KEY, point, min(maxlen, 100_000)))


def _eval(script: str, keys: tuple[str, ...], args: tuple[Any, ...], p: Pipeline) -> Any:
    return p.eval(script, len(keys), *keys, *args)


def _xadd_capped(key: str, fields: dict[str, float], maxlen: int, p: Pipeline) -> Any:
    return p.xadd(key, fields, maxlen=maxlen, approximate=True)  # type: ignore[arg-type]


async def load(r: Redis, engine: ExecutionEngine) -> None:
    """Restore positions, working orders, the dedupe record and the account, and
    rebuild the quote history from the tail of ``md.ticks``."""
    # The client decodes responses (shared.bus.connect): every key and value is a str.
    raw_books: dict[str, str] = await r.hgetall(POSITIONS_KEY)  # type: ignore[misc,assignment]
    engine.books = {s: PositionBook(**orjson.loads(b)) for s, b in raw_books.items()}
    raw_working: dict[str, str] = await r.hgetall(WORKING_KEY)  # type: ignore[misc,assignment]
    engine.restore({k: WorkingOrder(**orjson.loads(v)) for k, v in raw_working.items()})
    newest: list[str] = await r.zrange(DONE_INDEX_KEY, -engine.cfg.done_orders_max, -1)  # type: ignore[assignment]
    outcomes: list[str | None] = (
        await r.hmget(ORDERS_DONE_KEY, newest) if newest else []  # type: ignore[misc,arg-type,assignment]
    )
    engine.done.clear()
    for order_id, outcome in zip(newest, outcomes, strict=True):
        engine.done[order_id] = outcome or "done"
    acct = await r.hgetall(ACCOUNT_KEY)  # type: ignore[misc]
    if acct:
        engine.account.day = int(acct.get("day", -1))
        engine.account.day_start_pnl_usd = float(acct.get("day_start_pnl_usd", 0.0))
    tail: list[Any] = await r.xrevrange(MD_TICKS, count=engine.cfg.quote_history * 8)  # type: ignore[assignment]
    for _, fields in reversed(tail):
        try:
            tick = Tick.from_fields(fields)
        except DecodeError:
            continue  # bad ticks went to the dlq when they were consumed
        engine.quotes.add(tick, engine.cfg.strategies.volume_ewma_ticks)
