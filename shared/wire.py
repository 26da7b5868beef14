"""A lean Redis connection for the hot path: the consume loop's reads and commits, and a
source's publishes.

redis-py's asyncio client costs about 110 us of CPU per command here (connection pool,
retry wrapper, response callbacks); a batch of one entry took two of them (XREADGROUP,
then EVALSHA), so at 1,000 ticks/s the six services spent most of both cores on
client overhead. This is an ``asyncio.Protocol`` that packs with hiredis and parses with
``hiredis.Reader``: about a third of the cost, and several commands can share one
write (see ``Bus``: a batch's commit and the next read go out together).

Replies come back in order, so requests from several tasks interleave safely (each
``send`` writes its commands in one piece). Error replies raise redis-py's exceptions
(``ResponseError``, ``NoScriptError``, ...), a lost or silent connection raises
``ConnectionError`` / ``TimeoutError`` and the next call reconnects: callers keep the
retry and recovery logic they have for redis-py.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import deque
from collections.abc import Sequence
from typing import Any

import hiredis
from redis._parsers.base import BaseParser
from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection
from redis.commands.core import CoreCommands
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Command = Sequence[Any]


def reply_error(reply: hiredis.ReplyError) -> ResponseError:
    """redis-py's exception for an error reply (NOSCRIPT -> NoScriptError, ...)."""
    return BaseParser.parse_error(str(reply))  # type: ignore[return-value]


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader(encoding="utf-8", errors="replace")
        # (replies expected, replies so far, future) per request, in send order
        self.waiting: deque[tuple[int, list[Any], asyncio.Future[list[Any]]]] = deque()
        self.transport: asyncio.Transport | None = None
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # small requests must not wait for the ACK of the previous one (Nagle)
            with contextlib.suppress(Exception):  # uvloop's socket stand-in may refuse
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        reader, waiting = self.reader, self.waiting
        reader.feed(data)
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as exc:
                self._fail(RedisConnectionError(f"protocol error: {exc}"))
                if self.transport is not None:
                    self.transport.close()
                return
            if reply is False:
                return
            if not waiting:  # a reply nobody asked for: the stream is out of step
                self._fail(RedisConnectionError("unexpected reply"))
                if self.transport is not None:
                    self.transport.close()
                return
            n, replies, fut = waiting[0]
            replies.append(reply)
            if len(replies) == n:
                waiting.popleft()
                if not fut.done():
                    fut.set_result(replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RedisConnectionError(f"connection lost: {exc or 'closed by server'}"))

    def _fail(self, exc: BaseException) -> None:
        self.lost = exc
        while self.waiting:
            _, _, fut = self.waiting.popleft()
            if not fut.done():
                fut.set_exception(exc)


class Wire:
    """One connection to the Redis of ``client`` (same host, port, db and user)."""

    def __init__(self, client: Redis, *, timeout_s: float = 10.0) -> None:
        pool = client.connection_pool
        self.kwargs = dict(pool.connection_kwargs)
        self.ssl: Any = None
        if issubclass(pool.connection_class, SSLConnection):  # rediss://: the same TLS
            self.ssl = pool.connection_class(**self.kwargs).ssl_context.get()
        self.timeout_s = timeout_s
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None

    async def _connect(self) -> _Protocol:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._proto is not None and self._proto.lost is None:
                return self._proto
            kw = self.kwargs
            loop = asyncio.get_running_loop()
            connect_timeout = kw.get("socket_connect_timeout") or 2.0
            try:
                if kw.get("path"):
                    coro = loop.create_unix_connection(_Protocol, kw["path"])
                else:
                    host = kw.get("host", "127.0.0.1")
                    coro = loop.create_connection(
                        _Protocol,
                        host,
                        kw.get("port", 6379),
                        ssl=self.ssl,
                        server_hostname=host if self.ssl is not None else None,
                    )
                _, proto = await asyncio.wait_for(coro, connect_timeout)
            except (TimeoutError, OSError) as exc:
                raise RedisConnectionError(f"cannot connect to Redis: {exc}") from None
            hello: list[Command] = []
            if kw.get("password"):
                user = kw.get("username")
                hello.append(("AUTH", user, kw["password"]) if user else ("AUTH", kw["password"]))
            if kw.get("db"):
                hello.append(("SELECT", kw["db"]))
            self._proto = proto
            if hello:
                try:
                    replies = await self._submit(proto, [hello], connect_timeout)[0]
                except BaseException:
                    self._proto = None
                    if proto.transport is not None:
                        proto.transport.close()
                    raise
                for reply in replies:
                    if isinstance(reply, hiredis.ReplyError):
                        self.close()
                        raise reply_error(reply)
            return proto

    async def submit(
        self, commands: Sequence[Command], timeout_s: float | None = None
    ) -> asyncio.Future[list[Any]]:
        """Write ``commands`` in one piece now; a future of their replies, in order. Error
        replies are ``hiredis.ReplyError`` values in the list (see ``raise_errors``)."""
        return (await self.submit_groups([commands], timeout_s))[0]

    async def submit_groups(
        self, groups: Sequence[Sequence[Command]], timeout_s: float | None = None
    ) -> list[asyncio.Future[list[Any]]]:
        """Several requests in ONE write (one syscall: on a VM a send costs tens of us),
        a future of replies per request."""
        proto = self._proto
        if proto is None or proto.lost is not None:
            proto = await self._connect()
        return self._submit(proto, groups, timeout_s or self.timeout_s)

    async def send(self, commands: Sequence[Command], timeout_s: float | None = None) -> list[Any]:
        """``submit`` and wait for the replies."""
        return await (await self.submit(commands, timeout_s))

    def _submit(
        self, proto: _Protocol, groups: Sequence[Sequence[Command]], timeout_s: float
    ) -> list[asyncio.Future[list[Any]]]:
        transport = proto.transport
        assert transport is not None
        pack = hiredis.pack_command
        if len(groups) == 1 and len(groups[0]) == 1:
            transport.write(pack(tuple(groups[0][0])))
        else:
            transport.write(b"".join([pack(tuple(c)) for cmds in groups for c in cmds]))
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[list[Any]]] = []
        for cmds in groups:
            fut: asyncio.Future[list[Any]] = loop.create_future()
            proto.waiting.append((len(cmds), [], fut))
            timer = loop.call_later(timeout_s, _expire, fut, proto)
            fut.add_done_callback(lambda _f, t=timer: t.cancel())  # type: ignore[misc]
            futures.append(fut)
        return futures

    def submit_now(
        self, commands: Sequence[Command], timeout_s: float | None = None
    ) -> asyncio.Future[list[Any]] | None:
        """``submit`` without awaiting: written before this returns, so the caller can
        go on computing while Redis works. None when not connected (use ``submit``)."""
        proto = self._proto
        if proto is None or proto.lost is not None:
            return None
        return self._submit(proto, [commands], timeout_s or self.timeout_s)[0]

    @property
    def generation(self) -> int:
        """Changes with every new connection (a restarted Redis forgot its scripts)."""
        return id(self._proto)

    async def call(self, *args: Any, timeout_s: float | None = None) -> Any:
        """One command; its reply, or its error raised."""
        reply = (await self.send((args,), timeout_s))[0]
        if isinstance(reply, hiredis.ReplyError):
            raise reply_error(reply)
        return reply

    def close(self) -> None:
        proto, self._proto = self._proto, None
        if proto is not None and proto.transport is not None:
            proto.transport.close()


def _expire(fut: asyncio.Future[list[Any]], proto: _Protocol) -> None:
    """No reply in time: the connection is unusable (replies would be out of step)."""
    if not fut.done():
        proto._fail(RedisTimeoutError("no reply from Redis in time"))
        if proto.transport is not None:
            proto.transport.close()


def raise_errors(replies: list[Any]) -> None:
    """Raise the first error reply of ``replies`` (including inside an EXEC reply)."""
    for reply in replies:
        if isinstance(reply, hiredis.ReplyError):
            raise reply_error(reply)
        if isinstance(reply, list):
            for item in reply:
                if isinstance(item, hiredis.ReplyError):
                    raise reply_error(item)


class Recorder(CoreCommands):  # type: ignore[misc]
    """Stands in for a redis-py pipeline: records the commands a handler queues
    (``out.call(lambda pipe: pipe.hset(...))``) so they can go out on a ``Wire``."""

    _event_dispatcher: Any = None  # abstract in CoreCommands; unused here

    def __init__(self) -> None:
        self.commands: list[tuple[Any, ...]] = []

    def execute_command(self, *args: Any, **options: Any) -> Recorder:
        self.commands.append(args)
        return self
