"""`edgebus daily --now [--apply] [--out DIR] [--day YYYY-MM-DD] [--max-entries N]`
and `edgebus daily --backtest DIR [--out DIR2] [--day YYYY-MM-DD]`.

The I/O shell of the daily schedule (docs/daily.md "The schedule"): the 02:00 review
(services/validation/daily_job.py; model_router runs it itself on its event-time timer)
run now, on demand, and the 23:55 PnL attribution report (report_job.py).

``--now`` (on the stack; $REDIS_URL or the stack file): the current model_router config
(parameter_server's current version, else conf/), the router's persisted state
``edgebus:model_router:state:<consumer>`` (with several replicas, the one with the most
days closed, said on stderr) and its scored calls, reviewed at the router's event time:
``next_review_ns - 1 day`` (the last 02:00 its timer passed, or would have), else the
start of its paper books' day (``tracks.day``); the wall clock is never the review's
time. The report is of one UTC day (``--day``, by default that of the newest fill),
from the streams orders, fills, signals (consensus only), risk.decisions and positions
(the equity marks), each read newest first up to ``--max-entries`` and kept by the
decoded ``ts_ns`` (entry ids are wall-clock ms, not event time). Without ``--apply``
nothing is written to Redis (``"applied": false``); with it, a changed config is put on
``param.proposals`` as a ConfigProposal with source ``daily:now:<review source>``, which
parameter_server stores as a version.

``--backtest DIR``: the report of every UTC day of a backtest directory
(services/backtest/runner.py: orders.csv, fills.csv, decisions.csv, equity.csv); there is
no signals.csv, so every trade is ``unattributed``. Bad rows are skipped and named on
stderr by file and line.

One JSON document on stdout; ``--out`` also writes ``review-<day>.json`` and
``pnl-<day>.json`` (``--now``) or ``pnl-<day>.json`` per day (``--backtest``). Exit codes: 0
done, 1 unreachable Redis or an unreadable input, 2 a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar, cast

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.model_router.config import RouterRules
from services.model_router.service import STATE_PREFIX, calls_key
from services.validation.daily_job import Review, review
from services.validation.report_job import CONSENSUS_ID, DAY_NS, pnl_report
from shared.config import ConfigError, load_current
from shared.messages import (
    FILLS,
    ORDERS,
    POSITIONS,
    RISK_DECISIONS,
    SIGNALS,
    ConfigProposal,
    DecodeError,
    Fill,
    Message,
    Order,
    Position,
    RiskDecision,
    Signal,
)

PROG = "edgebus daily"
DEFAULT_MAX_ENTRIES = 200_000
PAGE = 10_000  # entries per XREVRANGE
MAX_REPORTED_ROWS = 20  # bad rows named on stderr per file; the rest are counted

M = TypeVar("M", bound=Message)


class UsageError(Exception):
    pass


class InputError(Exception):
    """Unreachable Redis or an unreadable input: exit 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not argparse's usage block
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--now", action="store_true", help="review and report on the stack")
    mode.add_argument("--backtest", type=Path, metavar="DIR", help="report every day of DIR")
    p.add_argument("--apply", action="store_true", help="--now: propose a changed config")
    p.add_argument("--out", type=Path, metavar="DIR", help="also write the JSON files here")
    p.add_argument("--day", help="YYYY-MM-DD (UTC): the report's day")
    p.add_argument(
        "--max-entries",
        type=int,
        default=DEFAULT_MAX_ENTRIES,
        help=f"--now: newest entries read per stream (default {DEFAULT_MAX_ENTRIES})",
    )
    return p


def _day_start_ns(day: str) -> int:
    try:
        d = dt.date.fromisoformat(day)
    except ValueError:
        raise UsageError(f"--day {day!r}: expected YYYY-MM-DD") from None
    return int(dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC).timestamp()) * 10**9


def _dumps(doc: Any) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY)


def _write_json(out: Path, name: str, doc: Any) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(_dumps(doc) + b"\n")
    except OSError as exc:
        raise InputError(f"cannot write {out / name}: {exc}") from None


def _warn(msg: str) -> None:
    print(f"{PROG}: {msg}", file=sys.stderr)


# ---- --now: the stack ----------------------------------------------------------------


@dataclass
class RouterEvidence:
    consumer: str
    state: dict[str, Any]
    calls: dict[str, list[tuple[int, float, float]]] = field(default_factory=dict)

    def review_at_ns(self) -> int:
        """The router's event time (module docstring): never the wall clock."""
        nxt = self.state.get("next_review_ns")
        if nxt is not None:
            return int(nxt) - DAY_NS
        day = self.state.get("tracks", {}).get("day")
        if day is not None:
            return int(day) * DAY_NS
        raise InputError(
            f"model_router state of {self.consumer!r} has no event time yet "
            "(no next_review_ns, no tracks.day): has it handled any features?"
        )


async def read_router(r: Redis, rules: RouterRules) -> RouterEvidence:
    """The persisted state with the most days closed, and its scored calls."""
    found: list[tuple[int, str, dict[str, Any]]] = []
    async for key in r.scan_iter(match=f"{STATE_PREFIX}:*", count=500):
        raw = await r.get(key)
        if raw is None:
            continue
        consumer = str(key)[len(STATE_PREFIX) + 1 :]
        try:
            state = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            _warn(f"{key}: not JSON ({exc}); skipped")
            continue
        found.append((int(state.get("days_closed", 0)), consumer, state))
    if not found:
        raise InputError(f"no model_router state in Redis ({STATE_PREFIX}:*): has it run?")
    found.sort(key=lambda x: (x[0], x[1]))
    days, consumer, state = found[-1]
    if len(found) > 1:
        names = ", ".join(c for _, c, _ in found)
        _warn(f"{len(found)} model_router states ({names}); using {consumer} ({days} days closed)")
    models = [mw.id for rule in rules.rules for mw in rule.models]
    evidence = RouterEvidence(consumer, state)
    for model_id in dict.fromkeys([*models, CONSENSUS_ID]):
        rows = await r.lrange(calls_key(consumer, model_id), 0, -1)  # type: ignore[misc]
        try:
            calls = [(int(c[0]), float(c[1]), float(c[2])) for c in map(orjson.loads, rows)]
        except (orjson.JSONDecodeError, IndexError, TypeError, ValueError) as exc:
            raise InputError(
                f"{calls_key(consumer, model_id)}: a call is unreadable ({exc})"
            ) from None
        if calls:
            evidence.calls[model_id] = calls
    return evidence


async def read_stream(r: Redis, stream: str, cls: type[M], max_entries: int) -> list[M]:
    """The newest ``max_entries`` entries of ``stream`` decoded, oldest first; entries
    that do not decode are counted on stderr (with the first one's reason)."""
    out: list[M] = []
    bad: list[str] = []
    upper = "+"
    seen = 0
    while seen < max_entries:
        # (the client decodes responses: ids and fields are str)
        page = cast(
            "list[tuple[str, dict[str, str]]]",
            await r.xrevrange(stream, max=upper, min="-", count=min(PAGE, max_entries - seen)),
        )
        if not page:
            break
        for entry_id, fields in page:
            try:
                out.append(cls.from_fields(fields))
            except DecodeError as exc:
                bad.append(f"{entry_id}: {exc}")
        seen += len(page)
        upper = f"({page[-1][0]}"
    if seen >= max_entries and await r.xrevrange(stream, max=upper, min="-", count=1):
        _warn(f"{stream}: read the newest {max_entries} entries only (--max-entries)")
    if bad:
        _warn(f"{stream}: {len(bad)} entries not decoded, skipped (first: {bad[0]})")
    out.reverse()
    return out


async def now(args: argparse.Namespace) -> dict[str, Any]:
    from shared.bus import connect, redis_url
    from shared.cli import find_stack

    find_stack()
    url = redis_url()
    r = connect(url)
    try:
        try:
            await asyncio.wait_for(r.ping(), timeout=5.0)
        except (RedisError, OSError, TimeoutError) as exc:
            raise InputError(f"cannot reach Redis at {url}: {exc or type(exc).__name__}") from None
        try:
            cfg, version, _ = await load_current(r, "model_router")
        except ConfigError as exc:
            raise InputError(f"model_router config: {exc}") from None
        assert isinstance(cfg, RouterRules)
        evidence = await read_router(r, cfg)
        at_ns = evidence.review_at_ns()
        try:
            rev = review(cfg, evidence.state, dict(evidence.calls), at_ns)
        except (KeyError, TypeError, ValueError) as exc:  # a state this code cannot read
            raise InputError(
                f"model_router state of {evidence.consumer!r}: not reviewable ({exc!r})"
            ) from None

        cap = args.max_entries
        orders = await read_stream(r, ORDERS, Order, cap)
        fills = await read_stream(r, FILLS, Fill, cap)
        signals = [
            s for s in await read_stream(r, SIGNALS, Signal, cap) if s.model_id == CONSENSUS_ID
        ]
        decisions = await read_stream(r, RISK_DECISIONS, RiskDecision, cap)
        positions = await read_stream(r, POSITIONS, Position, cap)
        equity = [(p.ts_ns, p.equity_usd) for p in positions if p.equity_usd is not None]
        if args.day:
            start = _day_start_ns(args.day)
        else:
            newest = max((f.ts_ns for f in fills), default=at_ns)
            start = newest // DAY_NS * DAY_NS
        report = pnl_report(orders, fills, signals, start, start + DAY_NS, equity, decisions)

        changed = rev.rules is not None
        source = "daily:now:" + rev.source
        doc: dict[str, Any] = {
            "review": rev.report,
            "review_at_ns": at_ns,
            "consumer": evidence.consumer,
            "config_version": version,
            "proposed_source": source if changed else None,
            "changed": changed,
            "applied": False,
            "report": report,
        }
        if args.apply and changed:
            doc["proposal_id"] = await propose(r, rev, source)
            doc["applied"] = True
        elif args.apply:
            doc["note"] = "nothing changed: nothing proposed"
        return doc
    except RedisError as exc:
        raise InputError(f"Redis at {url}: {exc}") from None
    finally:
        await r.aclose()


async def propose(r: Redis, rev: Review, source: str) -> str:
    """The review's config on ``param.proposals``: parameter_server stores it as a version."""
    assert rev.rules is not None
    msg = ConfigProposal(
        trace_ts_ns=time.time_ns(),
        component="model_router",
        ts_ns=rev.at_ns,
        source=source,
        config=rev.rules.model_dump(mode="json"),
        report=rev.report,
    )
    entry_id = await r.xadd(msg.STREAM, msg.to_fields())  # type: ignore[arg-type]
    return str(entry_id)


# ---- --backtest: a backtest directory ------------------------------------------------


def read_csv(path: Path, cls: type[M]) -> list[M]:
    """A runner CSV (one entry per row; empty cells are absent fields); bad rows named."""
    out: list[M] = []
    n_bad = 0
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            for line, row in enumerate(csv.DictReader(fh), start=2):
                fields = {k: v for k, v in row.items() if k and v not in ("", None)}
                try:
                    out.append(cls.from_fields(fields))
                except DecodeError as exc:
                    n_bad += 1
                    if n_bad <= MAX_REPORTED_ROWS:
                        _warn(f"{path.name} line {line}: {exc} (skipped)")
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    if n_bad > MAX_REPORTED_ROWS:
        _warn(f"{path.name}: {n_bad} bad rows in all")
    return out


def read_equity(path: Path) -> list[tuple[int, float]]:
    """equity.csv's (ts_ns, equity_usd) marks; bad rows named."""
    marks: list[tuple[int, float]] = []
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            for line, row in enumerate(csv.DictReader(fh), start=2):
                try:
                    marks.append((int(row["ts_ns"]), float(row["equity_usd"])))
                except (KeyError, TypeError, ValueError) as exc:
                    _warn(f"{path.name} line {line}: bad ts_ns or equity_usd ({exc}) (skipped)")
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    return marks


def backtest(args: argparse.Namespace) -> dict[str, Any]:
    d: Path = args.backtest
    if not (d / "fills.csv").is_file():
        raise InputError(f"{d}: no fills.csv (not a backtest directory?)")
    orders = read_csv(d / "orders.csv", Order) if (d / "orders.csv").exists() else []
    fills = read_csv(d / "fills.csv", Fill)
    decisions = (
        read_csv(d / "decisions.csv", RiskDecision) if (d / "decisions.csv").exists() else []
    )
    equity = read_equity(d / "equity.csv") if (d / "equity.csv").exists() else []
    stamps = [f.ts_ns for f in fills] + [t for t, _ in equity]
    if args.day:
        starts = [_day_start_ns(args.day)]
    elif stamps:
        first, last = min(stamps) // DAY_NS, max(stamps) // DAY_NS
        starts = [day * DAY_NS for day in range(first, last + 1)]
    else:
        starts = []
    days = [pnl_report(orders, fills, [], s, s + DAY_NS, equity, decisions) for s in starts]
    if args.out:
        for rep in days:
            _write_json(args.out, f"pnl-{rep['day']}.json", rep)
    return {"source": str(d), "days": days}


def _check(args: argparse.Namespace) -> None:
    if args.backtest is not None and args.apply:
        raise UsageError("--apply goes with --now (a backtest directory has no stack to apply to)")
    if args.max_entries < 1:
        raise UsageError(f"--max-entries {args.max_entries}: must be >= 1")
    if args.day:
        _day_start_ns(args.day)


def main(argv: Sequence[str]) -> int:
    try:
        args = _parser().parse_args(list(argv))
        _check(args)
    except UsageError as exc:
        _warn(f"{exc} (see `{PROG} --help`)")
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    try:
        if args.now:
            doc = asyncio.run(now(args))
            if args.out:
                day = doc["report"]["day"]
                _write_json(
                    args.out, f"review-{day}.json", {k: v for k, v in doc.items() if k != "report"}
                )
                _write_json(args.out, f"pnl-{day}.json", doc["report"])
        else:
            doc = backtest(args)
    except InputError as exc:
        _warn(str(exc))
        return 1
    sys.stdout.write(_dumps(doc).decode() + "\n")
    return 0
