"""`edgebus backtest --check-lookahead FILE`: nothing decided may depend on later data.

freqtrade's lookahead analysis is the model: run the whole file, then run it again
cut at several points; every decision, order and fill at or before a cut's last time
must be the same in the cut run, since a system without lookahead cannot know what
came after. A difference names the first changed entry and the cut. (The event-time
merge makes this hold for the pipeline by construction; the check catches a model or
feature that peeks ahead, e.g. through shared state.)
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console

from services.backtest import runner
from shared.config import ComponentConfig
from shared.messages import Message, RawQuote

CUTS = (0.25, 0.5, 0.75)


def _rows(msgs: Sequence[Message], until_ns: int) -> list[dict[str, str]]:
    return [runner.entry_fields(m) for m in msgs if getattr(m, "ts_ns", 0) <= until_ns]


def find_changes(
    quotes: Sequence[RawQuote],
    configs: dict[str, ComponentConfig],
    cuts: Sequence[float] = CUTS,
) -> list[str]:
    """One line per cut whose run changed an entry at or before the cut."""
    full = runner.Backtest(configs).run(quotes)
    problems = []
    for frac in cuts:
        n = int(len(quotes) * frac)
        if n <= 0 or n >= len(quotes):
            continue
        # A cut between two times: rows of one time stay together.
        while 0 < n < len(quotes) and quotes[n].ts_ns == quotes[n - 1].ts_ns:
            n -= 1
        if n <= 0:
            continue
        until = quotes[n - 1].ts_ns
        cut = runner.Backtest(configs).run(quotes[:n])
        for name, a, b in (
            ("decisions", full.decisions, cut.decisions),
            ("orders", full.orders, cut.orders),
            ("fills", full.fills, cut.fills),
        ):
            ra, rb = _rows(a, until), _rows(b, until)
            if ra != rb:
                i = next((k for k, (x, y) in enumerate(zip(ra, rb, strict=False)) if x != y), None)
                where = (
                    f"entry {i}: {ra[i]} != {rb[i]}"
                    if i is not None
                    else (f"{len(ra)} entries with all the data, {len(rb)} cut")
                )
                problems.append(
                    f"cut at {frac:.0%} (row {n}, ts_ns {until}): {name} changed, {where}"
                )
                break
    return problems


def check(quotes: Sequence[RawQuote], configs: dict[str, ComponentConfig], console: Console) -> int:
    problems = find_changes(quotes, configs)
    if problems:
        for line in problems:
            console.print(f"[red]lookahead: {line}[/]")
        return 4
    console.print(
        f"[green]lookahead check passed[/]: {len(quotes):,} quotes, cuts at "
        + ", ".join(f"{c:.0%}" for c in CUTS)
    )
    return 0
