"""`edgebus replay FILE [--speed X]`: play a recorded file through the running stack.

Rows become raw quotes (``replay_rows``) on stream ``md.raw``, where the running
feature_bus checks them and turns them into ``md.ticks`` and ``features`` like any
other source. ``--speed X`` keeps the file's own timing X times faster; 0 sends as fast
as the stack takes it. Backpressure: the replay never has more than
``replay.max_lag_entries`` quotes that feature_bus has not yet handled (counted from
feature_bus's per-session counters), so memory stays bounded whatever the file size.

Exit codes: 0 done (bad rows are reported and skipped, not fatal); 1 unreadable file or
config; 2 the stack is not running; 3 feature_bus stopped making progress.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from redis.asyncio import Redis
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from services.feature_bus.config import FeatureBusConfig, ReplayParams
from services.feature_bus.replay_rows import RowError, count_rows, read_rows, row_to_quote
from services.feature_bus.service import SESSION_KEY
from shared.bus import redis_url
from shared.config import ConfigError, load_file
from shared.messages import MD_RAW, RawQuote, Watermark, watermark_stream

GROUP = "feature_bus"
# The replay is a producer like the services: its watermarks are on ``wm.replay``.
PRODUCER = "replay"


def _iso(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, UTC).isoformat(timespec="seconds")


def file_quotes(
    path: Path,
    p: ReplayParams,
    session: str,
    on_bad: Callable[[int, str], None],
    on_unsorted: Callable[[int], None] | None = None,
) -> list[RawQuote]:
    """Every good row of ``path`` as a raw quote, in event-time order: a file that is
    not sorted by time (bars grouped by symbol, say) is sorted, stably, so rows of one
    time keep the file's order. ``on_bad(line, reason)`` for each bad row;
    ``on_unsorted(line)`` once, with the first row earlier than the one before. The
    replay and the backtest both read files through this, so they see the same quotes."""
    kind, rows = read_rows(path, p.chunk_rows)
    quotes: list[RawQuote] = []
    ordered = True
    last = -(2**63)
    for line, row in rows:
        try:
            q = row_to_quote(row, kind, p.bar_spread_bps, line, session)
        except RowError as exc:
            on_bad(line, str(exc))
            continue
        if q.ts_ns < last and ordered:
            ordered = False
            if on_unsorted is not None:
                on_unsorted(line)
        last = q.ts_ns
        quotes.append(q)
    if not ordered:
        quotes.sort(key=lambda q: q.ts_ns)
    return quotes


class Stalled(RuntimeError):
    pass


class Replay:
    def __init__(
        self, r: Redis, cfg: FeatureBusConfig, path: Path, speed: float, console: Console
    ) -> None:
        self.r, self.cfg, self.path, self.speed, self.console = r, cfg, path, speed, console
        self.p = cfg.replay
        self.session = f"replay-{path.stem}-{os.getpid()}-{time.time_ns() // 1_000_000}"
        self.rows = 0
        self.sent = 0
        self.bad = 0
        self.bad_reasons: Counter[str] = Counter()
        self.done: dict[str, int] = {}

    async def handled(self) -> int:
        raw = await self.r.hgetall(SESSION_KEY.format(self.session))  # type: ignore[misc]
        self.done = {str(k): int(v) for k, v in raw.items()}
        return sum(self.done.values())

    async def wait_until_in_flight(self, limit: int) -> None:
        """Block while more than ``limit`` sent quotes are not yet handled by feature_bus."""
        last, since = -1, time.monotonic()
        while True:
            handled = await self.handled()
            if self.sent - handled <= limit:
                return
            if handled != last:
                last, since = handled, time.monotonic()
            elif time.monotonic() - since > self.p.stall_timeout_s:
                raise Stalled(
                    f"feature_bus handled nothing for {self.p.stall_timeout_s} s "
                    f"({self.sent - handled} quotes waiting on {MD_RAW})"
                )
            await asyncio.sleep(0.02)

    async def flush(self, chunk: list[dict[str, str | int | float]], wm_ns: int) -> None:
        """Write ``chunk``, then the watermark: every later row is after ``wm_ns``."""
        if not chunk:
            return
        await self.wait_until_in_flight(self.p.max_lag_entries - len(chunk))
        note = Watermark(producer=PRODUCER, wm_ns=max(wm_ns, 0), wall_ns=time.time_ns())
        async with self.r.pipeline(transaction=False) as pipe:
            for fields in chunk:
                pipe.xadd(MD_RAW, fields, maxlen=self.cfg.bus.maxlen, approximate=True)  # type: ignore[arg-type]
            pipe.xadd(
                watermark_stream(PRODUCER),
                note.to_fields(),  # type: ignore[arg-type]
                maxlen=self.cfg.bus.maxlen,
                approximate=True,
            )
            await pipe.execute()
        self.sent += len(chunk)
        chunk.clear()

    async def warn_if_behind(self, first_ts_ns: int) -> None:
        """A stack with a live source is at its own event time: rows before it are late
        data there (handled at once, out of order, as stale). Say so, and how to replay."""
        last = await self.r.xrevrange(watermark_stream("feature_bus"), count=1)
        if not last:
            return
        fields = last[0][1] or {}
        stack_ns = int(fields.get("wm_ns", 0))
        if stack_ns > first_ts_ns:
            self.console.print(
                "[yellow]the stack is already at event time "
                f"{_iso(stack_ns)} (a live source), after this file's first row "
                f"({_iso(first_ts_ns)}): its rows will be late there. To replay history, "
                "start the stack with EDGEBUS_SOURCE=replay make start (and a fresh Redis).[/]"
            )

    def report_unsorted(self, line: int) -> None:
        where = "line" if self.path.suffix.lower() == ".csv" else "row"
        self.console.print(
            f"[yellow]{where} {line}[/]: earlier than the row before; the file is not in "
            "time order, so it is replayed sorted by time (rows of one time in file order)"
        )

    def report_bad(self, line: int, reason: str) -> None:
        self.bad += 1
        self.bad_reasons[reason.split(":", 1)[0]] += 1
        if self.bad <= self.p.max_reported_rows:
            where = "line" if self.path.suffix.lower() == ".csv" else "row"
            self.console.print(f"[yellow]{where} {line}[/]: {reason}; skipped")
        elif self.bad == self.p.max_reported_rows + 1:
            self.console.print("[yellow]... further bad rows are only counted[/]")

    async def run(self, progress: Progress) -> None:
        quotes = file_quotes(self.path, self.p, self.session, self.report_bad, self.report_unsorted)
        self.rows = len(quotes) + self.bad
        if quotes:
            await self.warn_if_behind(quotes[0].ts_ns)
        task = progress.add_task("replay", total=count_rows(self.path), rate="")
        chunk: list[dict[str, str | int | float]] = []
        t0 = time.monotonic()
        first_ts = quotes[0].ts_ns if quotes else 0
        for i, q in enumerate(quotes):
            # Complete through just before the next row's time (the last: its own time).
            wm_ns = quotes[i + 1].ts_ns - 1 if i + 1 < len(quotes) else q.ts_ns
            if self.speed > 0:
                ahead_s = (q.ts_ns - first_ts) / 1e9 / self.speed - (time.monotonic() - t0)
                if ahead_s > 0.001:
                    await self.flush(chunk, q.ts_ns - 1)
                    await asyncio.sleep(ahead_s)
            chunk.append(q.to_fields())
            if len(chunk) >= self.p.chunk_rows or i + 1 == len(quotes):
                await self.flush(chunk, wm_ns)
            if i % 1000 == 0 or not chunk:
                rate = self.sent / max(1e-9, time.monotonic() - t0)
                progress.update(task, completed=i + 1 + self.bad, rate=f"{rate:,.0f} rows/s")
        await self.wait_until_in_flight(0)  # everything handled: the summary is final
        rate = self.sent / max(1e-9, time.monotonic() - t0)
        progress.update(task, completed=self.rows, rate=f"{rate:,.0f} rows/s")


async def _stack_running(r: Redis) -> bool:
    try:
        groups = await r.xinfo_groups(MD_RAW)
    except Exception:
        return False
    return any(g["name"] == GROUP for g in groups)


async def replay(path: Path, speed: float, console: Console, url: str | None = None) -> int:
    try:
        cfg = load_file("feature_bus")
    except ConfigError as exc:
        console.print(f"[red]config: {exc}[/]")
        return 1
    assert isinstance(cfg, FeatureBusConfig)
    r = Redis.from_url(url or redis_url(), decode_responses=True)
    try:
        if not await _stack_running(r):
            console.print(
                f"[red]feature_bus is not consuming {MD_RAW} on {url or redis_url()}: "
                "start the stack first (make start)[/]"
            )
            return 2
        job = Replay(r, cfg, path, speed, console)
        t0 = time.monotonic()
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
        )
        code = 0
        with Progress(*columns, console=console, transient=False) as progress:
            try:
                await job.run(progress)
            except (RowError, OSError, ValueError) as exc:  # header, encoding, Parquet format
                console.print(f"[red]{path}: {exc}[/]")
                return 1
            except Stalled as exc:
                console.print(f"[red]{exc}[/]")
                code = 3
        elapsed = time.monotonic() - t0
        _summary(job, elapsed, console)
        return code
    finally:
        await r.aclose()


def _summary(job: Replay, elapsed_s: float, console: Console) -> None:
    d = job.done
    console.print(
        f"[bold]replay {job.path.name}[/]: {job.rows:,} rows in {elapsed_s:.1f} s "
        f"({job.sent / max(elapsed_s, 1e-9):,.0f} rows/s); sent {job.sent:,}, "
        f"bad rows skipped {job.bad:,}"
    )
    console.print(
        f"feature_bus (session {job.session}): clean {d.get('clean', 0):,}, "
        f"flagged {d.get('flagged', 0):,}, to dlq {d.get('dlq', 0):,}"
    )
    for reason, n in job.bad_reasons.most_common(10):
        console.print(f"  bad rows, {reason}: {n:,}")


def main(file: str, speed: float = 1.0) -> int:
    """Entry point of `edgebus replay` / `make replay`; returns the exit code."""
    console = Console(stderr=True)
    path = Path(file)
    if not path.is_file():
        console.print(f"[red]{file}: no such file[/]")
        return 1
    if speed < 0:
        console.print("[red]--speed must be >= 0 (0 = as fast as the stack takes)[/]")
        return 1
    try:
        return asyncio.run(replay(path, speed, console))
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return 130
