"""Redis Streams plumbing: consume -> handle -> produce+ack, reclaim, dead-letter, MAXLEN.

The contract this module keeps:
- consumer groups are created idempotently (MKSTREAM, from the start of the stream);
- a batch's outputs and the XACK of its inputs go in one MULTI/EXEC, so an input is
  acknowledged only together with everything it produced;
- undecodable entries go to ``dlq`` with source stream, entry id, service and reason,
  acknowledged in the same transaction;
- entries idle past ``claim_idle_ms`` are taken over with XAUTOCLAIM; one delivered
  more than ``max_deliveries`` times goes to ``dlq`` instead of being retried forever;
- every XADD is capped with an approximate MAXLEN.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import hiredis
import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import Connection
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from shared.config import BusSettings
from shared.messages import DLQ, DeadLetter, DecodeError, Message, decode

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
  redis.call('XACK', stream, group, unpack(ARGV, a + 2, a + 1 + nids))
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
    """What handling one batch produces; written with the batch's acks in one MULTI/EXEC."""

    messages: list[tuple[str, Message]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    ops: list[Callable[[Pipeline], Any]] = field(default_factory=list)

    def emit(self, msg: Message, stream: str | None = None) -> None:
        self.messages.append((stream or msg.STREAM, msg))

    def call(self, op: Callable[[Pipeline], Any]) -> None:
        """Queue an extra write (state in a hash, say) into the same transaction."""
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

    # ---- groups --------------------------------------------------------------------

    async def ensure_groups(self) -> None:
        for stream in self.inputs:
            try:
                await self.r.xgroup_create(stream, self.group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    # ---- reading -------------------------------------------------------------------

    async def read(self, *, own_pending: bool = False) -> list[Entry]:
        """Next batch for this consumer: new entries (``>``), or its own pending (``0``)."""
        if not self.inputs:
            return []
        start = "0" if own_pending else ">"
        reply = await self.r.xreadgroup(
            self.group,
            self.consumer,
            dict.fromkeys(self.inputs, start),
            count=self.settings.batch_size,
            block=None if own_pending else self.settings.block_ms,
        )
        return self._entries(reply)

    def _entries(self, reply: Any) -> list[Entry]:
        out: list[Entry] = []
        for stream, items in reply or ():
            for entry_id, fields in items:
                out.append(self.decode(stream, entry_id, fields))
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

    def _xadd(self, pipe: Pipeline, stream: str, msg: Message) -> None:
        pipe.xadd(stream, msg.to_fields(), maxlen=self.settings.maxlen, approximate=True)  # type: ignore[arg-type]

    async def commit(self, outbox: Outbox, acks: Iterable[Entry]) -> None:
        """Write the outbox and acknowledge ``acks``, all or nothing.

        Without extra ops: one EVALSHA of ``_COMMIT_SCRIPT`` (atomic like MULTI/EXEC, but
        one command to pack and one reply to parse instead of two per entry). With ops
        (state writes queued by the handler): MULTI/EXEC.
        """
        by_stream: dict[str, list[str]] = {}
        for entry in acks:
            by_stream.setdefault(entry.stream, []).append(entry.entry_id)
        items = [*outbox.messages, *((DLQ, dl) for dl in outbox.dead)]
        if not outbox.ops:
            if items or by_stream:
                await self._run_commit_script(items, by_stream)
            return
        async with self.r.pipeline(transaction=True) as pipe:
            for stream, msg in items:
                self._xadd(pipe, stream, msg)
            for op in outbox.ops:
                op(pipe)
            for stream, ids in by_stream.items():
                pipe.xack(stream, self.group, *ids)
            await pipe.execute()

    async def publish(self, messages: Iterable[Message | tuple[str, Message]]) -> int:
        """Write messages without inputs (a source), atomically: readers never see half
        of a tick's outputs."""
        items = [item if isinstance(item, tuple) else (item.STREAM, item) for item in messages]
        if items:
            await self._run_commit_script(items, {})
        return len(items)

    async def _run_commit_script(
        self, items: list[tuple[str, Message]], acks: dict[str, list[str]]
    ) -> None:
        keys: list[str] = [stream for stream, _ in items]
        args: list[Any] = [self.settings.maxlen, self.group, len(items)]
        for _, msg in items:
            fields = msg.to_fields()
            args.append(2 * len(fields))
            for kv in fields.items():
                args.extend(kv)
        for stream, ids in acks.items():
            args.append(stream)
            args.append(len(ids))
            args.extend(ids)
        try:
            await self.r.evalsha(_COMMIT_SHA, len(keys), *keys, *args)  # type: ignore[misc]
        except NoScriptError:  # first use, or Redis restarted: EVAL caches it again
            await self.r.eval(_COMMIT_SCRIPT, len(keys), *keys, *args)  # type: ignore[misc]

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
