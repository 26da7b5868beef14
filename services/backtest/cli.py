"""`edgebus backtest FILE [--out DIR] [--conf-dir DIR] [--preset NAME]`,
`edgebus backtest --synthetic --ticks N --seed S`, `--check-lookahead`.

Exit codes: 0 done (bad rows are reported by line number and skipped, not fatal);
1 unreadable file or config; 4 the lookahead check found a decision that changed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from services.backtest import runner
from shared.config import ConfigError, project_root

MAX_REPORTED_ROWS = 20


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgebus backtest", description=__doc__)
    p.add_argument("file", nargs="?", help="CSV or Parquet, quotes or bars (the replay formats)")
    p.add_argument("--out", help="output directory (default .run/backtests/<name>)")
    p.add_argument("--conf-dir", help="directory with component YAMLs overriding conf/")
    p.add_argument("--preset", help="a preset under conf/presets/NAME (component YAMLs)")
    p.add_argument("--synthetic", action="store_true", help="the seeded synthetic market")
    p.add_argument("--ticks", type=int, default=100_000, help="synthetic: number of quotes")
    p.add_argument("--seed", type=int, default=7, help="synthetic: the market's seed")
    p.add_argument(
        "--check-lookahead",
        action="store_true",
        help="re-run with the data cut at several points; fail if a decision before a cut changes",
    )
    p.add_argument("--no-report", action="store_true", help="CSVs only (no report.json/html)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console(stderr=True)
    if not args.synthetic and not args.file:
        console.print("[red]give a FILE, or --synthetic[/]")
        return 1
    conf_dir = Path(args.conf_dir) if args.conf_dir else None
    if args.preset:
        conf_dir = project_root() / "conf" / "presets" / args.preset
        if not conf_dir.is_dir():
            console.print(f"[red]--preset {args.preset}: no directory {conf_dir}[/]")
            return 1
    try:
        configs = runner.load_configs(conf_dir)
    except (ConfigError, OSError) as exc:
        console.print(f"[red]config: {exc}[/]")
        return 1
    fb = configs["feature_bus"]
    bad: list[tuple[int, str]] = []

    def on_bad(line: int, reason: str) -> None:
        bad.append((line, reason))
        if len(bad) <= MAX_REPORTED_ROWS:
            console.print(f"[yellow]line {line}[/]: {reason}; skipped")
        elif len(bad) == MAX_REPORTED_ROWS + 1:
            console.print("[yellow]... further bad rows are only counted[/]")

    def on_unsorted(line: int) -> None:
        console.print(
            f"[yellow]line {line}[/]: earlier than the row before; the file is not in time "
            "order, so it is run sorted by time (rows of one time in file order)"
        )

    if args.synthetic:
        name = f"synthetic-{args.seed}-{args.ticks}"
        quotes = runner.synthetic_quotes(fb, args.ticks, args.seed)  # type: ignore[arg-type]
    else:
        path = Path(args.file)
        name = path.stem
        try:
            quotes = runner.read_file(path, fb, on_bad, on_unsorted)  # type: ignore[arg-type]
        except (OSError, ValueError) as exc:
            console.print(f"[red]{path}: {exc}[/]")
            return 1
    if args.check_lookahead:
        from services.backtest.lookahead import check

        return check(quotes, configs, console)
    out_dir = Path(args.out) if args.out else Path(".run") / "backtests" / name
    columns = (
        TextColumn("[bold]backtest"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
    )
    t0 = time.perf_counter()
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("backtest", total=len(quotes), rate="")

        def tick(done: int) -> None:
            if done % 5000 < runner.CHUNK_ROWS or done == len(quotes):
                rate = done / max(time.perf_counter() - t0, 1e-9)
                progress.update(task, completed=done, rate=f"{rate:,.0f} ticks/s")

        res = runner.Backtest(configs).run(quotes, progress=tick)
    res.bad_rows = bad
    runner.write(out_dir, res, configs)
    if not args.no_report:
        try:
            from services.backtest import report

            report.build(out_dir)
        except Exception as exc:  # the CSVs are written; say why the report is not
            console.print(f"[yellow]report not built: {type(exc).__name__}: {exc}[/]")
    run = res.run_section()
    console.print(
        f"[bold]backtest {name}[/]: {run['ticks']:,} ticks in {run['wall_s']:.1f} s "
        f"({run['ticks_per_s']:,.0f} ticks/s); orders {run['orders']:,}, fills {run['fills']:,}, "
        f"bad rows skipped {len(bad):,}; -> {out_dir}"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
