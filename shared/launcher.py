"""`edgebus start`: the whole stack as local processes, on $REDIS_URL or an embedded Redis.

Six children (`edgebus run SERVICE` each) with prefixed, interleaved logs and a
one-line summary every few seconds. Ctrl-C, SIGTERM or $STACK_SECONDS stop
everything cleanly (exit 0). If a child dies, the launcher says which and why, stops
the rest and exits non-zero. Children die with the launcher (PDEATHSIG), so no
orphan survives even a kill -9 of the launcher.

The embedded Redis takes port 6379 ($EDGEBUS_REDIS_PORT) when it is free, so the
README's `redis-cli` recipes work as written; otherwise any free port, and the banner
gives the `redis-cli -p N` to use. `.run/stack.json` (shared.stackfile) records where the
stack runs, so `edgebus status|replay|redis-cli` in another terminal find it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import os
import signal
import sys
import time
from typing import Any

import orjson

from services import SERVICE_NAMES
from shared import stackfile
from shared.embedded_redis import REDIS_DEFAULT_PORT, EmbeddedRedis, choose_port, preferred_port
from shared.http import http_port
from shared.procs import die_with_parent

COLOURS = ("36", "32", "35", "33", "34", "31")


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def get_json(
    port: int, path: str = "/health", timeout_s: float = 1.0
) -> dict[str, Any] | None:
    """A tiny HTTP GET over asyncio streams (no thread, no extra client)."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), timeout_s
        )
        writer.write(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        raw = await asyncio.wait_for(reader.read(), timeout_s)
        writer.close()
        body = raw.split(b"\r\n\r\n", 1)[1]
        doc = orjson.loads(body)
        return doc if isinstance(doc, dict) else None
    except (TimeoutError, OSError, IndexError, orjson.JSONDecodeError):
        return None


class Stack:
    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.tails: dict[str, collections.deque[str]] = {}
        self.redis: EmbeddedRedis | None = None
        self.stop_event = asyncio.Event()
        self.width = max(len(n) for n in SERVICE_NAMES)
        self.info: stackfile.StackInfo | None = None  # what .run/stack.json says

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop_event.set)
        url = os.environ.get("REDIS_URL")
        try:
            if not url:
                url = self._start_embedded_redis()
            else:
                say('[stack] redis-cli: `redis-cli -u "$REDIS_URL" ...` or `edgebus redis-cli ...`')
            self.info = stackfile.StackInfo.for_this_process(
                url,
                self.redis.port if self.redis else None,
                {n: http_port(n) for n in SERVICE_NAMES},
            )
            self._record("starting")
            say(f"[stack] REDIS_URL={_redact(url)}; starting {len(SERVICE_NAMES)} services")
            env = dict(os.environ, REDIS_URL=url, PYTHONUNBUFFERED="1")
            for i, name in enumerate(SERVICE_NAMES):
                await self._spawn(name, i, env)
            return await self._supervise()
        finally:
            await self._shutdown()

    def _start_embedded_redis(self) -> str:
        data_dir = stackfile.run_dir() / "redis"
        wanted = preferred_port()
        self.redis = EmbeddedRedis(data_dir, port=choose_port(wanted)).start()
        port = self.redis.port
        say(
            f"[stack] embedded redis-server on port {port} "
            f"(data in {data_dir}, binary {self.redis.binary})"
        )
        taken = f"port {wanted} is taken (another Redis?), so " if port != wanted else ""
        if port == REDIS_DEFAULT_PORT:
            say(
                "[stack] plain `redis-cli` reaches it: the README's redis-cli recipes work as written"
            )
        else:
            say(f"[stack] {taken}use `redis-cli -p {port} ...` for the README's redis-cli recipes")
        say(
            '[stack] (or `edgebus redis-cli ...` / `make redis-cli ARGS="..."`: they find this stack)'
        )
        return self.redis.url

    def _record(self, state: str) -> None:
        """Write .run/stack.json, so the CLI in another terminal finds this stack."""
        assert self.info is not None
        self.info = dataclasses.replace(self.info, state=state)
        path = stackfile.stack_path()
        if state == "starting":
            other = stackfile.read(path)
            if other and other.launcher_pid != self.info.launcher_pid and other.launcher_alive():
                say(f"[stack] {path} named another running stack (pid {other.launcher_pid})")
            say(f"[stack] recorded in {path} (edgebus status|replay|redis-cli find it there)")
        stackfile.write(self.info, path)

    async def _spawn(self, name: str, i: int, env: dict[str, str]) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "shared.cli",
            "run",
            name,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            preexec_fn=die_with_parent,
        )
        self.procs[name] = proc
        self.tails[name] = collections.deque(maxlen=20)
        asyncio.ensure_future(self._pump(name, proc, COLOURS[i % len(COLOURS)]))

    async def _pump(self, name: str, proc: asyncio.subprocess.Process, colour: str) -> None:
        assert proc.stdout is not None
        prefix = (
            f"\x1b[{colour}m{name:<{self.width}}\x1b[0m |"
            if sys.stdout.isatty()
            else f"{name:<{self.width}} |"
        )
        async for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            self.tails[name].append(line)
            say(f"{prefix} {line}")

    async def _supervise(self) -> int:
        started = time.monotonic()
        deadline = started + self.seconds if self.seconds else None
        waits = {asyncio.ensure_future(p.wait()): n for n, p in self.procs.items()}
        last_ticks, last_t = 0, time.monotonic()
        next_summary = time.monotonic() + 3.0
        ready = False
        while not self.stop_event.is_set():
            done, _ = await asyncio.wait(list(waits), timeout=0.2)
            for fut in done:
                name = waits[fut]
                code = fut.result()
                say(f"[stack] {name} exited with code {code}; last lines:")
                for line in list(self.tails[name])[-8:]:
                    say(f"[stack]   {line}")
                say("[stack] stopping the rest of the stack")
                return 1
            now = time.monotonic()
            if deadline and now >= deadline:
                say(f"[stack] STACK_SECONDS={self.seconds:g} reached")
                break
            if not ready and await self._all_healthy():
                ready = True
                self._record("ready")
                say(f"[stack] all {len(SERVICE_NAMES)} services healthy")
            if now >= next_summary:
                next_summary = now + 3.0
                last_ticks, last_t = await self._summary(now - started, last_ticks, last_t)
        return 0

    async def _all_healthy(self) -> bool:
        docs = await asyncio.gather(*(get_json(http_port(n), timeout_s=0.5) for n in SERVICE_NAMES))
        # "degraded" (a stale feed, say) is alive and says why: not a start failure
        return all(d is not None and d.get("status") in ("ok", "degraded") for d in docs)

    async def _summary(self, elapsed: float, last_ticks: int, last_t: float) -> tuple[int, float]:
        docs = dict(
            zip(
                SERVICE_NAMES,
                await asyncio.gather(*(get_json(http_port(n)) for n in SERVICE_NAMES)),
                strict=True,
            )
        )
        fb, rh, ex = (
            docs.get("feature_bus") or {},
            docs.get("risk_harmoniser") or {},
            docs.get("execution") or {},
        )
        ticks = int(fb.get("ticks_published", last_ticks))
        now = time.monotonic()
        rate = (ticks - last_ticks) / max(now - last_t, 1e-9)
        down = [
            n if d else f"{n} (down)" for n, d in docs.items() if not d or d.get("status") != "ok"
        ]
        say(
            f"[stack] {elapsed:5.0f}s | ticks/s {rate:7.1f} | orders {rh.get('orders_sent', '?')} | "
            f"fills {ex.get('fills', '?')} | pnl ${ex.get('pnl_usd', 0):,.2f} | "
            f"state {rh.get('trading_state', '?')} | unhealthy: {', '.join(down) or 'none'}"
        )
        return ticks, now

    async def _shutdown(self) -> None:
        for proc in self.procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        for name, proc in self.procs.items():
            try:
                code = await asyncio.wait_for(proc.wait(), timeout=8.0)
                if code not in (0, -signal.SIGTERM):
                    say(f"[stack] {name} stopped with code {code}")
            except TimeoutError:
                say(f"[stack] {name} did not stop in 8 s; killing it")
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self.info is not None:
            stackfile.remove(self.info.launcher_pid)
        if self.redis is not None:
            self.redis.stop()
        say("[stack] stopped")


def _redact(url: str) -> str:
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


def start(seconds: float | None = None) -> int:
    if seconds is None and os.environ.get("STACK_SECONDS"):
        seconds = float(os.environ["STACK_SECONDS"])
    return asyncio.run(Stack(seconds).run())
