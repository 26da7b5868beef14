"""Redis Streams plumbing: consume -> handle -> produce+ack, reclaim, dead-letter, MAXLEN.

The contract this module keeps:
- consumer groups are created idempotently (MKSTREAM, from the start of the stream);
- a batch's outputs and the XACK of its inputs go in one atomic command (the commit
  Lua script; MULTI/EXEC when the batch also queued state writes), so an input is
  acknowledged only together with everything it produced;
- undecodable entries go to ``dlq`` with source stream, entry id, service and reason,
  acknowledged in the same transaction;
- entries idle past ``claim_idle_ms`` are taken over with XAUTOCLAIM; one delivered
  more than ``max_deliveries`` times goes to ``dlq`` instead of being retried forever;
- every XADD is capped with an approximate MAXLEN.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import hiredis
import orjson
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from shared.config import BusSettings
from shared.messages import DLQ, DeadLetter, DecodeError, Message, decode
from shared.wire import Recorder, Wire, raise_errors

log = logging.getLogger("edgebus.bus")

# Errors after which the connection is retried with backoff (Redis restarting, network).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    OSError,
)


# Outputs and acks of one batch in one atomic command. KEYS: the stream of each output.
# ARGV: maxlen, group, number of outputs; per output the number of field/value items and
# the items; then per acknowledged stream its name, the number of ids and the ids. Input
# streams are not KEYS on purpose: a service's ACL user may only XREADGROUP/XACK them,
# and Redis checks the XACK inside the script against exactly that.
_COMMIT_SCRIPT = """
local maxlen, group, n_out = ARGV[1], ARGV[2], tonumber(ARGV[3])
local a = 4
for i = 1, n_out do
  local nf = tonumber(ARGV[a])
  redis.call('XADD', KEYS[i], 'MAXLEN', '~', maxlen, '*', unpack(ARGV, a + 1, a + nf))
  a = a + nf + 1
end
while a <= #ARGV do
  local stream, nids = ARGV[a], tonumber(ARGV[a + 1])
  -- in slices: unpack is bounded by Lua's stack (a merge can release thousands at once)
  for i = a + 2, a + 1 + nids, 1000 do
    redis.call('XACK', stream, group, unpack(ARGV, i, math.min(i + 999, a + 1 + nids)))
  end
  a = a + nids + 2
end
return n_out
"""
_COMMIT_SHA = hashlib.sha1(_COMMIT_SCRIPT.encode()).hexdigest()


def redis_url() -> str:
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


class FastPackConnection(Connection):
    """redis-py's async connection packs commands in pure Python (about 4x slower than
    hiredis for a 30-field XADD, the hot path of every service): pack with hiredis."""

    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str):
            args = (*args[0].encode().split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError as exc:  # same error as redis-py's own packer
            raise DataError(str(exc)) from None


def connect(url: str | None = None, *, block_ms: int = 1_000) -> Redis:
    """An async client that retries transient errors with exponential backoff.

    The socket timeout outlives the longest XREADGROUP BLOCK, so a quiet stream is not
    mistaken for a dead server.
    """
    return Redis.from_url(
        url or redis_url(),
        connection_class=FastPackConnection,
        decode_responses=True,
        # Anyone can XADD or PUBLISH raw bytes: a strict decode would fail the whole
        # reply, leaving the batch pending forever and the entry never dead-lettered.
        encoding_errors="replace",
        socket_timeout=max(5.0, block_ms / 1000 + 5),
        socket_connect_timeout=2.0,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=15,
    )


def default_consumer(service: str) -> str:
    """Stable per host and service, so a restarted replica first finishes its own pending."""
    return os.environ.get("EDGEBUS_CONSUMER") or f"{service}@{socket.gethostname()}"


@dataclass(slots=True)
class Entry:
    """One stream entry as read: its decoded message, or why it could not be decoded."""

    stream: str
    entry_id: str
    fields: dict[str, str]
    message: Message | None = None
    error: str | None = None


@dataclass(slots=True)
class Outbox:
    """What handling one batch produces; written with the batch's acks in one atomic
    command (the commit script, or MULTI/EXEC when it has state writes)."""

    messages: list[tuple[str, Message]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    ops: list[Callable[[Any], Any]] = field(default_factory=list)

    def emit(self, msg: Message, stream: str | None = None) -> None:
        self.messages.append((stream or msg.STREAM, msg))

    def call(self, op: Callable[[Any], Any]) -> None:
        """Queue an extra write (state in a hash, say) into the same transaction: ``op``
        gets a recorder with redis-py's command methods (``pipe.hset(...)``)."""
        self.ops.append(op)

    def __len__(self) -> int:
        return len(self.messages) + len(self.dead) + len(self.ops)


def dead_letter(service: str, entry: Entry, reason: str) -> DeadLetter:
    return DeadLetter(
        source_stream=entry.stream,
        entry_id=entry.entry_id,
        service=service,
        reason=reason[:1000],
        payload=orjson.dumps(entry.fields).decode()[:10_000],
    )


class Bus:
    """One service's view of its input streams in one consumer group."""

    def __init__(
        self,
        r: Redis,
        service: str,
        inputs: Iterable[str],
        settings: BusSettings,
        *,
        group: str | None = None,
        consumer: str | None = None,
    ) -> None:
        self.r = r
        self.service = service
        self.inputs = tuple(inputs)
        self.group = group or service
        self.consumer = consumer or default_consumer(service)
        self.settings = settings
        # The hot path's own connections (shared.wire): ``rx`` for the consume loop (its
        # blocking reads and its commits, the next read sent with the commit), ``tx`` for
        # everything else (a source's publishes, commits from timers).
        timeout_s = settings.block_ms / 1000 + 5
        self.rx = Wire(r, timeout_s=timeout_s)
        self.tx = Wire(r, timeout_s=timeout_s)
        self.prefetched: asyncio.Future[list[Any]] | None = None
        self._script_on: set[int] = set()  # connections that have run the commit script

    def close(self) -> None:
        self._drop_prefetch()
        self.rx.close()
        self.tx.close()

    # ---- groups --------------------------------------------------------------------

    async def ensure_groups(self) -> None:
        for stream in self.inputs:
            try:
                await self.r.xgroup_create(stream, self.group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    # ---- reading -------------------------------------------------------------------

    async def read(
        self, *, own_pending: bool = False, after: dict[str, str] | None = None
    ) -> list[Entry]:
        """Next batch for this consumer: new entries (``>``), or its own pending (from
        ``0``, or past ``after[stream]``). A read sent ahead with the last commit
        (``commit(..., prefetch=True)``) is used when new entries are wanted."""
        if not self.inputs:
            return []
        fut, self.prefetched = self.prefetched, None
        if fut is not None:
            if not own_pending:
                return self._entries(self._reply(await fut))
            _discard(fut)  # its entries are ours now: the read of "0" returns them
        reply = await self.rx.call(*self._read_command(own_pending, after))
        return self._entries(reply)

    def _read_command(self, own_pending: bool, after: dict[str, str] | None = None) -> list[Any]:
        cmd: list[Any] = ["XREADGROUP", "GROUP", self.group, self.consumer]
        cmd += ["COUNT", self.settings.batch_size]
        if not own_pending:
            cmd += ["BLOCK", self.settings.block_ms]
        cmd.append("STREAMS")
        cmd.extend(self.inputs)
        if own_pending:
            cmd.extend((after or {}).get(s, "0") for s in self.inputs)
        else:
            cmd.extend([">"] * len(self.inputs))
        return cmd

    @staticmethod
    def _reply(replies: list[Any]) -> Any:
        raise_errors(replies)
        return replies[0]

    def _drop_prefetch(self) -> None:
        fut, self.prefetched = self.prefetched, None
        if fut is not None:
            _discard(fut)

    def _entries(self, reply: Any) -> list[Entry]:
        """Entries of an XREADGROUP / XAUTOCLAIM-style reply: [[stream, [[id, [k, v, ...]
        or nil], ...]], ...] (RESP2 lists, as the hot-path connection returns them) or
        redis-py's parsed form (field dicts)."""
        out: list[Entry] = []
        decode_entry = self.decode
        for stream, items in reply or ():
            for entry_id, fields in items:
                if isinstance(fields, list):
                    it = iter(fields)
                    fields = dict(zip(it, it, strict=False))
                out.append(decode_entry(stream, entry_id, fields))
        return out

    def decode(self, stream: str, entry_id: str, fields: dict[str, str] | None) -> Entry:
        entry = Entry(stream, entry_id, fields or {})
        if not fields:
            # Trimmed away (MAXLEN) while pending: nothing to handle, only to acknowledge.
            entry.error = "deleted"
            return entry
        try:
            entry.message = decode(stream, fields)
        except DecodeError as exc:
            entry.error = str(exc)
        except Exception as exc:  # a decoder bug must not stop the service either
            entry.error = f"decoder failed: {type(exc).__name__}: {exc}"
        return entry

    # ---- writing -------------------------------------------------------------------

    async def commit(
        self, outbox: Outbox, acks: Iterable[Entry], *, prefetch: bool | None = None
    ) -> None:
        """Write the outbox and acknowledge ``acks``, all or nothing.

        Without extra ops: one EVALSHA of ``_COMMIT_SCRIPT`` (atomic like MULTI/EXEC, but
        one command to pack and one reply to parse instead of two per entry). With ops
        (state writes queued by the handler): MULTI/EXEC.

        ``prefetch`` is for the consume loop: its commits go on ``rx`` and, when True,
        the next XREADGROUP goes out in the same write (``read`` then takes its reply).
        Other callers (timers) leave it None and write on ``tx``.
        """
        by_stream: dict[str, list[str]] = {}
        for entry in acks:
            by_stream.setdefault(entry.stream, []).append(entry.entry_id)
        items = [*outbox.messages, *((DLQ, dl) for dl in outbox.dead)]
        wire = self.tx if prefetch is None else self.rx
        if outbox.ops:
            rec = Recorder()
            for op in outbox.ops:
                op(rec)
            maxlen = self.settings.maxlen
            cmds: list[Any] = [("MULTI",)]
            for stream, msg in items:
                cmd: list[Any] = ["XADD", stream, "MAXLEN", "~", maxlen, "*"]
                for kv in msg.to_fields().items():
                    cmd.extend(kv)
                cmds.append(cmd)
            cmds.extend(rec.commands)
            for stream, ids in by_stream.items():
                cmds.append(("XACK", stream, self.group, *ids))
            cmds.append(("EXEC",))
        elif items or by_stream:
            cmds = [self._script_command(wire, items, by_stream)]
        else:
            cmds = []
        if not cmds:
            if prefetch:
                self.prefetched = await wire.submit([self._read_command(False)])
            return
        if prefetch:  # the commit and the next read in one write
            done, self.prefetched = await wire.submit_groups([cmds, [self._read_command(False)]])
        else:
            done = await wire.submit(cmds)
        try:
            replies = await done
            if outbox.ops and replies[-1] is None:
                raise ResponseError("transaction aborted")
            raise_errors(replies)
        except NoScriptError:  # Redis forgot it (SCRIPT FLUSH): EVAL caches it again
            self._script_on.discard(wire.generation)
            await wire.call(*self._script_command(wire, items, by_stream))
        except BaseException:
            self._drop_prefetch()
            raise
        if len(cmds) == 1 and cmds[0][0] == "EVAL":
            self._script_on.add(wire.generation)

    async def publish(self, messages: Iterable[Message | tuple[str, Message]]) -> int:
        """Write messages without inputs (a source), atomically: readers never see half
        of a tick's outputs."""
        items = [item if isinstance(item, tuple) else (item.STREAM, item) for item in messages]
        if items:
            await self.commit(Outbox(messages=items), ())
        return len(items)

    def publish_now(
        self, messages: Iterable[Message | tuple[str, Message]]
    ) -> Callable[[], Awaitable[None]]:
        """``publish``, written before this returns (when connected): a source computes
        its next batch while Redis appends this one. Await the returned callable for the
        outcome (errors raise there); publishes land in call order."""
        items = [item if isinstance(item, tuple) else (item.STREAM, item) for item in messages]
        wire = self.tx
        fut = wire.submit_now([self._script_command(wire, items, {})]) if items else None

        async def outcome() -> None:
            if fut is None:
                if items:
                    await self.publish(items)
                return
            generation = wire.generation
            try:
                raise_errors(await fut)
            except NoScriptError:  # Redis forgot it: EVAL caches it again
                self._script_on.discard(generation)
                await wire.call(*self._script_command(wire, items, {}))
            self._script_on.add(wire.generation)

        return outcome

    def _script_command(
        self, wire: Wire, items: list[tuple[str, Message]], acks: dict[str, list[str]]
    ) -> list[Any]:
        """EVALSHA of the commit script; EVAL on a connection that has not run it yet
        (a restarted Redis has forgotten it; EVAL caches it again)."""
        known = wire.generation in self._script_on
        cmd: list[Any] = ["EVALSHA", _COMMIT_SHA] if known else ["EVAL", _COMMIT_SCRIPT]
        cmd.append(len(items))
        cmd.extend(stream for stream, _ in items)
        cmd += [self.settings.maxlen, self.group, len(items)]
        for _, msg in items:
            fields = msg.to_fields()
            cmd.append(2 * len(fields))
            for kv in fields.items():
                cmd.extend(kv)
        for stream, ids in acks.items():
            cmd.append(stream)
            cmd.append(len(ids))
            cmd.extend(ids)
        return cmd

    # ---- taking over stuck work ----------------------------------------------------

    async def reclaim(self, stream: str) -> tuple[list[Entry], list[tuple[Entry, int]]]:
        """XAUTOCLAIM entries idle past ``claim_idle_ms`` in ``stream``.

        Returns (entries to handle again, (entry, deliveries) pairs that exceeded
        ``max_deliveries`` and must go to the dlq).
        """
        s = self.settings
        claimed: list[Entry] = []
        cursor = "0-0"
        for _ in range(10):  # bounded: at most 10 pages per pass
            reply = await self.r.xautoclaim(
                stream, self.group, self.consumer, s.claim_idle_ms, cursor, count=s.batch_size
            )
            cursor, items = reply[0], reply[1]
            for entry_id, fields in items:
                claimed.append(self.decode(stream, entry_id, fields))
            if cursor in ("0-0", b"0-0"):
                break
        if not claimed:
            return [], []
        deliveries = await self._deliveries(stream, claimed)
        retry: list[Entry] = []
        poison: list[tuple[Entry, int]] = []
        for entry in claimed:
            count = deliveries.get(entry.entry_id, 1)
            if count > s.max_deliveries:
                poison.append((entry, count))
            else:
                retry.append(entry)
        return retry, poison

    async def _deliveries(self, stream: str, entries: list[Entry]) -> dict[str, int]:
        ids = [e.entry_id for e in entries]
        rows = await self.r.xpending_range(
            stream,
            self.group,
            min=min(ids, key=_id_key),
            max=max(ids, key=_id_key),
            count=len(ids) * 2 + 10,
            consumername=self.consumer,
        )
        return {str(row["message_id"]): int(row["times_delivered"]) for row in rows}

    # ---- observing -----------------------------------------------------------------

    async def max_group_lag(self, streams: Iterable[str]) -> int:
        """The largest lag of any consumer group on ``streams`` (entries not yet delivered;
        Redis >= 7 only: 0 where Redis does not know)."""
        worst = 0
        for stream in streams:
            try:
                groups = await self.r.xinfo_groups(stream)
                last_id = (await self.r.xinfo_stream(stream))["last-generated-id"]
            except ResponseError:
                continue  # no such stream yet
            for g in groups:
                worst = max(worst, group_lag(g, last_id))
        return worst

    async def lag(self) -> dict[str, tuple[int, int]]:
        """stream -> (lag, pending) of this group. Lag needs Redis >= 7; else -1."""
        out: dict[str, tuple[int, int]] = {}
        for stream in self.inputs:
            try:
                groups = await self.r.xinfo_groups(stream)
                last_id = (await self.r.xinfo_stream(stream))["last-generated-id"]
            except ResponseError:
                continue
            for g in groups:
                if g["name"] == self.group:
                    lag = group_lag(g, last_id) if g.get("lag") is not None else -1
                    out[stream] = (lag, int(g["pending"]))
        return out


def _discard(fut: asyncio.Future[Any]) -> None:
    """A request whose reply nobody will use: retrieve its outcome when it comes."""

    def swallow(f: asyncio.Future[Any]) -> None:
        with contextlib.suppress(BaseException):
            f.result()

    fut.add_done_callback(swallow)


def group_lag(group: dict[str, Any], last_id: str) -> int:
    """A group's lag from XINFO GROUPS (0 where Redis does not know).

    Redis 7.0 can restore a wrong entries-read from the AOF after a restart, so its lag
    stays > 0 for ever: a group that has been delivered the last entry is not behind,
    whatever the counter says.
    """
    if _id_key(group["last-delivered-id"]) >= _id_key(last_id):
        return 0
    lag = group.get("lag")
    return int(lag) if lag is not None else 0


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
