"""`edgebus backtest`: the stack's own services wired in one process, no Redis.

feature_bus -> model_router -> risk_harmoniser -> execution (-> risk again), through
the in-memory harness (shared/testing.py): the same handlers, the same event-time
merge and watermarks as the stack, so the orders and fills are the ones the stack
makes from the same file (tests/integration/test_parity.py proves it). Quotes enter
exactly as ``edgebus replay`` sends them: raw quotes on ``md.raw`` in chunks, each
followed by the replay's watermark (complete through just before the next row).

Outputs (``write``): ``orders.csv``, ``fills.csv``, ``decisions.csv`` (the fields of
those streams, one row per entry, in stream order; ``v`` and the wall-clock
``trace_ts_ns`` left out, so two runs give byte-identical files), ``equity.csv``, then
``report.json`` / ``report.html`` (services/backtest/report.py), and
``config_history.jsonl``: the router config versions model_router's daily review made
(validation results, promotions), as parameter_server's history would hold them.
"""

from __future__ import annotations

import csv
import datetime as dt
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from services.execution.config import ExecutionConfig
from services.execution.service import Execution
from services.feature_bus.config import FeatureBusConfig
from services.feature_bus.replay import PRODUCER, file_quotes
from services.feature_bus.service import FeatureBus
from services.feature_bus.synthetic import SyntheticMarket
from services.model_router.config import RouterRules
from services.model_router.service import ModelRouter
from services.risk_harmoniser.config import RiskParams
from services.risk_harmoniser.service import RiskHarmoniser
from shared.config import ComponentConfig, load_file, read_yaml, validate
from shared.messages import (
    FILLS,
    MD_RAW,
    ORDERS,
    PARAM_PROPOSALS,
    POSITIONS,
    REJECTIONS,
    RISK_DECISIONS,
    ConfigProposal,
    Fill,
    Message,
    Order,
    Position,
    RawQuote,
    RiskDecision,
)
from shared.service import Service
from shared.testing import Harness

COMPONENTS = ("feature_bus", "model_router", "risk_harmoniser", "execution")
RECORDED = (ORDERS, FILLS, RISK_DECISIONS, POSITIONS, REJECTIONS, PARAM_PROPOSALS)
CHUNK_ROWS = 500  # as the replay's default chunk: the batch size never changes the result
# A fixed start for synthetic backtests (2026-01-01T00:00:00Z): the same seed and
# config give the same timestamps, not just the same prices.
SYNTHETIC_START_NS = 1_767_225_600_000_000_000
_SKIP = ("v", "trace_ts_ns")
DAY_NS = 86_400 * 10**9


def load_configs(conf_dir: Path | None = None) -> dict[str, ComponentConfig]:
    """Each component's config: its file in ``conf_dir`` when there is one, else conf/.
    (A local backtest may read any directory; the stack's reloads stay confined.)"""
    from shared.config import COMPONENTS as SPECS

    out: dict[str, ComponentConfig] = {}
    for name in COMPONENTS:
        spec_path = Path(SPECS[name].path)
        own = conf_dir / spec_path.name if conf_dir is not None else None
        if own is not None and own.is_file():
            out[name] = validate(name, read_yaml(own))
        else:
            out[name] = load_file(name)
    return out


@dataclass
class Result:
    orders: list[Order] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    decisions: list[RiskDecision] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)
    ticks: int = 0
    bad_rows: list[tuple[int, str]] = field(default_factory=list)
    wall_s: float = 0.0
    held: dict[str, int] = field(default_factory=dict)
    day_ends_ns: list[int] = field(default_factory=list)  # the last quote time of each UTC day
    # model_router's daily reviews that changed its config (promotions, validation
    # results): the versions parameter_server would store, in event-time order
    proposals: list[ConfigProposal] = field(default_factory=list)

    @property
    def ticks_per_s(self) -> float:
        return self.ticks / self.wall_s if self.wall_s > 0 else 0.0

    def run_section(self) -> dict[str, Any]:
        return {
            "ticks": self.ticks,
            "ticks_per_s": round(self.ticks_per_s, 1),
            "orders": len(self.orders),
            "fills": len(self.fills),
            "orders_per_1k_ticks": round(1000 * len(self.orders) / max(self.ticks, 1), 3),
            "wall_s": round(self.wall_s, 3),
            "bad_rows": len(self.bad_rows),
        }


class Backtest:
    """The four trading services on one harness."""

    def __init__(self, configs: dict[str, ComponentConfig]) -> None:
        fb_cfg = configs["feature_bus"]
        assert isinstance(fb_cfg, FeatureBusConfig)
        # The replay is the only source, as in a stack started with EDGEBUS_SOURCE=replay.
        self.feature_bus = FeatureBus(fb_cfg.model_copy(update={"source": "replay"}))
        mr, rk, ex = configs["model_router"], configs["risk_harmoniser"], configs["execution"]
        assert isinstance(mr, RouterRules)
        assert isinstance(rk, RiskParams)
        assert isinstance(ex, ExecutionConfig)
        self.router = ModelRouter(mr)
        self.services: list[Service[Any]] = [
            self.feature_bus,
            self.router,
            RiskHarmoniser(rk),
            Execution(ex),
        ]
        self.harness = Harness(self.services, record=RECORDED)

    def run(
        self,
        quotes: Sequence[RawQuote],
        *,
        progress: Callable[[int], None] | None = None,
        chunk_rows: int = CHUNK_ROWS,
    ) -> Result:
        h = self.harness
        t0 = time.perf_counter()
        n = len(quotes)
        for start in range(0, n, chunk_rows):
            chunk = quotes[start : start + chunk_rows]
            end = start + len(chunk)
            # As the replay: complete through just before the next row's time.
            wm_ns = quotes[end].ts_ns - 1 if end < n else chunk[-1].ts_ns
            h.feed(MD_RAW, chunk, producer=PRODUCER, wm_ns=max(wm_ns, 0))
            h.run()
            if progress is not None:
                progress(end)
        res = Result(ticks=n, wall_s=time.perf_counter() - t0, held=h.held())
        last_day, ends = None, res.day_ends_ns
        for q in quotes:
            day = q.ts_ns // DAY_NS
            if day != last_day:
                ends.append(q.ts_ns)
                last_day = day
            else:
                ends[-1] = q.ts_ns
        res.orders = _typed(h.out[ORDERS], Order)
        res.fills = _typed(h.out[FILLS], Fill)
        res.decisions = _typed(h.out[RISK_DECISIONS], RiskDecision)
        res.positions = _typed(h.out[POSITIONS], Position)
        res.proposals = _typed(h.out[PARAM_PROPOSALS], ConfigProposal)
        return res


def _typed(msgs: Iterable[Message], cls: type[Any]) -> list[Any]:
    return [m for m in msgs if isinstance(m, cls)]


def synthetic_quotes(cfg: FeatureBusConfig, ticks: int, seed: int) -> list[RawQuote]:
    """``ticks`` quotes of the seeded synthetic market, on its own event clock."""
    market = SyntheticMarket(cfg.model_copy(update={"seed": seed}), SYNTHETIC_START_NS)
    return list(market.quotes(ticks))


def read_file(
    path: Path,
    cfg: FeatureBusConfig,
    on_bad: Callable[[int, str], None],
    on_unsorted: Callable[[int], None] | None = None,
) -> list[RawQuote]:
    """The file's quotes as the replay reads them (services/feature_bus/replay.py)."""
    return file_quotes(path, cfg.replay, f"backtest-{path.stem}", on_bad, on_unsorted)


# ---- files ---------------------------------------------------------------------------


def _columns(cls: type[Message]) -> list[str]:
    return [name for name in cls.model_fields if name not in _SKIP]


def entry_fields(msg: Message) -> dict[str, str]:
    """An entry's fields as its stream carries them, without ``v`` and the wall-clock
    ``trace_ts_ns``: what the CSVs hold, and what parity and the lookahead check compare."""
    return {k: str(v) for k, v in msg.to_fields().items() if k not in _SKIP}


def write_stream_csv(path: Path, cls: type[Message], rows: Sequence[Message]) -> None:
    """One row per entry, the entry's fields as the stream carries them."""
    cols = _columns(cls)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(cols)
        for msg in rows:
            fields = entry_fields(msg)
            w.writerow([fields.get(c, "") for c in cols])


def equity_rows(
    positions: Sequence[Position], starting_equity_usd: float, day_ends_ns: Sequence[int] = ()
) -> list[list[Any]]:
    """equity.csv: one row per event time with a mark (the last snapshot at that time),
    and at the last quote of every UTC day (a flat book keeps its equity): equity, gross
    PnL (before fees), net PnL, fees, drawdown below the running peak."""
    fees: dict[str, float] = {}
    by_ts: dict[int, tuple[float, float, float]] = {}
    for p in positions:
        fees[p.symbol] = p.fees_usd
        net = p.account_pnl_usd if p.account_pnl_usd is not None else p.total_pnl_usd
        eq = p.equity_usd if p.equity_usd is not None else starting_equity_usd + net
        by_ts[p.ts_ns] = (eq, net, sum(fees.values()))
    marks = sorted(by_ts)
    i, last = 0, (starting_equity_usd, 0.0, 0.0)
    for end in day_ends_ns:  # carry the last mark to each day's end
        while i < len(marks) and marks[i] <= end:
            last = by_ts[marks[i]]
            i += 1
        by_ts.setdefault(end, last)
    rows: list[list[Any]] = []
    peak = starting_equity_usd
    for ts in sorted(by_ts):
        eq, net, fee = by_ts[ts]
        peak = max(peak, eq)
        dd = (peak - eq) / peak * 100.0 if peak > 0 else 0.0
        iso = dt.datetime.fromtimestamp(ts / 1e9, dt.UTC).isoformat().replace("+00:00", "Z")
        rows.append([iso, ts, repr(eq), repr(net + fee), repr(net), repr(fee), repr(dd)])
    return rows


def write(out_dir: Path, res: Result, configs: dict[str, ComponentConfig]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_stream_csv(out_dir / "orders.csv", Order, res.orders)
    write_stream_csv(out_dir / "fills.csv", Fill, res.fills)
    write_stream_csv(out_dir / "decisions.csv", RiskDecision, res.decisions)
    ex = configs["execution"]
    assert isinstance(ex, ExecutionConfig)
    with (out_dir / "equity.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(
            [
                "ts",
                "ts_ns",
                "equity_usd",
                "gross_pnl_usd",
                "net_pnl_usd",
                "fees_usd",
                "drawdown_pct",
            ]
        )
        w.writerows(equity_rows(res.positions, ex.starting_equity_usd, res.day_ends_ns))
    # parameter_server's history as the stack would hold it: version 1 the file, then
    # one version per proposal of the daily review
    with (out_dir / "config_history.jsonl").open("wb") as fh:
        for i, p in enumerate(res.proposals):
            rec = {
                "component": p.component,
                "version": i + 2,
                "source": p.source,
                "ts_ns": p.ts_ns,
                "changes": (p.report or {}).get("changes", []),
            }
            fh.write(orjson.dumps(rec, option=orjson.OPT_SORT_KEYS) + b"\n")
    # The run section first; the report adds the metrics beside it.
    doc = {"run": res.run_section()}
    (out_dir / "report.json").write_bytes(
        orjson.dumps(doc, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
    )
