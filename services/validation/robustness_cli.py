"""`edgebus validate robustness FILE | --synthetic --ticks N --seed S [--conf-dir DIR]
[--preset NAME] [--levels 0.01,0.05,0.1] [--seeds 3] [--figure out.png]`.

The I/O shell of services/validation/robustness.py: it loads the quotes and configs as
`edgebus backtest` does, runs the backtest (services/backtest/runner.py) once clean and
``--seeds`` times per noise level, and prints one JSON document on stdout. A run's Sharpe
is ``robustness.equity_sharpe`` of its equity.csv rows (runner.equity_rows), its net PnL
the last row's net PnL. ``--figure`` writes a PNG of the Sharpe against the noise level
(mean, error bars one std across seeds). Exit codes: 0 done, 1 an unreadable input or
config, 2 a usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from services.backtest import runner
from services.execution.config import ExecutionConfig
from services.feature_bus.config import FeatureBusConfig
from services.validation import robustness as rb
from shared.config import ComponentConfig, ConfigError, project_root
from shared.messages import RawQuote

MAX_REPORTED_ROWS = 20


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgebus validate robustness", description=__doc__)
    p.add_argument("file", nargs="?", help="CSV or Parquet, quotes or bars (the replay formats)")
    p.add_argument("--synthetic", action="store_true", help="the seeded synthetic market")
    p.add_argument("--ticks", type=int, default=10_000, help="synthetic: number of quotes")
    p.add_argument("--seed", type=int, default=7, help="the market's seed and the first noise seed")
    p.add_argument("--conf-dir", help="directory with component YAMLs overriding conf/")
    p.add_argument("--preset", help="a preset under conf/presets/NAME")
    p.add_argument("--levels", default=",".join(str(x) for x in rb.DEFAULT_LEVELS))
    p.add_argument("--seeds", type=int, default=rb.DEFAULT_SEEDS, help="noise seeds per level")
    p.add_argument("--figure", type=Path, help="write a PNG of Sharpe against noise level")
    return p


def backtest_runner(configs: dict[str, ComponentConfig]) -> rb.Runner:
    """``run(quotes) -> RunMetrics``: a fresh backtest of the quotes (a new harness each run)."""
    ex = configs["execution"]
    assert isinstance(ex, ExecutionConfig)

    def run(quotes: Sequence[RawQuote]) -> rb.RunMetrics:
        res = runner.Backtest(configs).run(quotes)
        rows = runner.equity_rows(res.positions, ex.starting_equity_usd, res.day_ends_ns)
        ts = [int(r[1]) for r in rows]
        eq = [float(r[2]) for r in rows]
        net = float(rows[-1][4]) if rows else 0.0
        return rb.RunMetrics(rb.equity_sharpe(ts, eq), net, len(res.fills))

    return run


def write_figure(result: rb.RobustnessResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [0.0] + [lv.level * 100 for lv in result.levels]
    ys = [result.clean.sharpe] + [lv.sharpe["mean"] for lv in result.levels]
    errs = [0.0] + [lv.sharpe["std"] for lv in result.levels]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=4, label="Sharpe (mean ± std over seeds)")
    ax.axhline(result.clean.sharpe, color="grey", linestyle="--", linewidth=1, label="clean")
    ax.set_xlabel("noise, % of the log returns' std")
    ax.set_ylabel("annualised Sharpe")
    ax.set_title(f"robustness {result.robustness_score:.2f}: {result.recommendation}")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    plt.close(fig)


def _load(args: argparse.Namespace) -> tuple[list[RawQuote], dict[str, ComponentConfig], str]:
    conf_dir = Path(args.conf_dir) if args.conf_dir else None
    if args.preset:
        conf_dir = project_root() / "conf" / "presets" / args.preset
        if not conf_dir.is_dir():
            raise ValueError(f"--preset {args.preset}: no directory {conf_dir}")
    configs = runner.load_configs(conf_dir)
    fb = configs["feature_bus"]
    assert isinstance(fb, FeatureBusConfig)
    if args.synthetic:
        return runner.synthetic_quotes(fb, args.ticks, args.seed), configs, "synthetic"
    bad: list[tuple[int, str]] = []

    def on_bad(line: int, reason: str) -> None:
        bad.append((line, reason))
        if len(bad) <= MAX_REPORTED_ROWS:
            print(f"line {line}: {reason} (skipped)", file=sys.stderr)

    quotes = runner.read_file(Path(args.file), fb, on_bad)
    return quotes, configs, str(args.file)


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        levels = [float(x) for x in args.levels.split(",") if x.strip()]
    except ValueError:
        levels = []
    if not levels or any(not 0 < x < 10 for x in levels) or args.seeds < 1:
        print(
            "edgebus validate robustness: --levels needs fractions > 0 (0.01,0.05,0.1) "
            "and --seeds >= 1",
            file=sys.stderr,
        )
        return 2
    if not args.synthetic and not args.file:
        print("edgebus validate robustness: give a FILE, or --synthetic", file=sys.stderr)
        return 2
    try:
        quotes, configs, source = _load(args)
    except (ConfigError, OSError, ValueError) as exc:
        print(f"edgebus validate robustness: {exc}", file=sys.stderr)
        return 1
    result = rb.analyse(quotes, backtest_runner(configs), levels, args.seeds, seed=args.seed)
    doc: dict[str, Any] = result.as_dict()
    doc.update(source=source, ticks=len(quotes), seed=args.seed)
    if args.figure:
        write_figure(result, args.figure)
        doc["figure"] = str(args.figure)
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode() + "\n")
    return 0
