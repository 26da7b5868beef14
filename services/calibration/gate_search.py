"""Gate calibration by grid search over synthetic backtests (seed 002, ``gate_calibration.py``:
"grid search optimization over gate thresholds", "historical trade simulation", "train/test
validation", "optimal threshold selection"; its report gives train and test win rates).

For every point of the grid (the product of each key's values; a key is a dotted path into
risk_harmoniser's config, conf/risk_params.yml), the four trading services run on each
seed's synthetic quotes (services/backtest/runner.py) with that point's values.

Round trips (the unit of the score), per symbol, from the fills in order: a round trip
opens when the position leaves 0 and closes when it is back at 0; a fill that crosses 0
closes the trip with the part that flattens and opens the next with the rest (fee split
pro rata). Its PnL is the cash flow of its fills net of fees and funding:

    pnl_usd = sum over its fills of ( -s_i q_i p_i - fee_i - funding_i )   (s = +1 buy, -1 sell)

and it is a win when pnl_usd > 0.

Split by time within each seed's run: split_ts = the event time of quote
floor(train_frac * n). A round trip is in-sample (train) when it closed before split_ts,
out-of-sample (test) when it opened at or after it; one that straddles the split, or is
still open at the end, counts in neither (reported). The run itself is continuous, so the
test period starts from the train period's state (positions, warm models) as live trading
would: only the choice of the point uses the train trips.

Score: win rate = wins / round trips, pooled over the seeds; net PnL is reported beside
it. The chosen point has the highest train win rate among points with at least
``min_trades`` train round trips (ties: higher train net PnL, then grid order); when no
point has that many, the best of all points is chosen and ``meets_min_trades`` is false.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.backtest import runner
from shared.config import ComponentConfig, ConfigError, validate
from shared.messages import Fill, RawQuote

COMPONENT = "risk_harmoniser"
# The default grid: the cost gate's buffer (seed 003 §4's safety margin; seed 002's scalp
# and runner cost buffers are 3 and 8 bps) and the size of MEDIUM-confidence trades (seed
# 001 §5's "small size"; 0 makes MEDIUM a no-trade level, i.e. a stricter confidence gate).
DEFAULT_GRID: dict[str, list[Any]] = {
    "costs.safety_margin_bps": [0.0, 2.0, 4.0, 8.0],
    "confidence_levels.medium": [0.0, 0.5, 1.0],
}
FLAT_REL = 1e-9  # |position| below this fraction of the trip's largest is flat


@dataclass(frozen=True)
class RoundTrip:
    symbol: str
    open_ts_ns: int
    close_ts_ns: int
    pnl_usd: float

    @property
    def win(self) -> bool:
        return self.pnl_usd > 0.0


def round_trips(fills: Iterable[Fill]) -> tuple[list[RoundTrip], int]:
    """Closed round trips per symbol, flat to flat (rules above), in close order; and the
    number of symbols left with an open position."""
    qty: dict[str, float] = {}
    cash: dict[str, float] = {}
    opened: dict[str, int] = {}
    peak: dict[str, float] = {}
    out: list[RoundTrip] = []
    for f in fills:
        s = f.symbol
        signed = f.qty if f.side == "buy" else -f.qty
        q0 = qty.get(s, 0.0)
        cost = f.fee + f.funding_usd
        if q0 != 0.0 and (q0 > 0.0) != (signed > 0.0) and abs(signed) >= abs(q0):
            # this fill flattens the trip (and may open the next with the rest)
            part = abs(q0) / abs(signed)
            pnl = cash[s] - part * (signed * f.price + cost)
            out.append(RoundTrip(s, opened[s], f.ts_ns, pnl))
            rest = signed + q0
            if abs(rest) <= FLAT_REL * max(peak[s], abs(signed)):
                qty[s], cash[s] = 0.0, 0.0
                continue
            qty[s], opened[s], peak[s] = rest, f.ts_ns, abs(rest)
            cash[s] = -(1.0 - part) * (signed * f.price + cost)
            continue
        if q0 == 0.0:
            opened[s], cash[s], peak[s] = f.ts_ns, 0.0, 0.0
        qty[s] = q0 + signed
        cash[s] -= signed * f.price + cost
        peak[s] = max(peak[s], abs(qty[s]))
        if abs(qty[s]) <= FLAT_REL * peak[s]:  # a rounding residue: flat
            out.append(RoundTrip(s, opened[s], f.ts_ns, cash[s]))
            qty[s], cash[s] = 0.0, 0.0
    return out, sum(1 for q in qty.values() if q != 0.0)


@dataclass
class Score:
    round_trips: int = 0
    wins: int = 0
    net_pnl_usd: float = 0.0

    def add(self, trips: Iterable[RoundTrip]) -> None:
        for t in trips:
            self.round_trips += 1
            self.wins += t.win
            self.net_pnl_usd += t.pnl_usd

    @property
    def win_rate(self) -> float | None:
        return self.wins / self.round_trips if self.round_trips else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "round_trips": self.round_trips,
            "wins": self.wins,
            "win_rate": self.win_rate,
            "net_pnl_usd": round(self.net_pnl_usd, 6),
        }


def split_ts_ns(quotes: Sequence[RawQuote], train_frac: float) -> int:
    """The event time of quote floor(train_frac * n): the first out-of-sample instant."""
    if not quotes:
        raise ValueError("no quotes to split")
    i = min(int(math.floor(train_frac * len(quotes))), len(quotes) - 1)
    return quotes[i].ts_ns


def parse_value(text: str) -> Any:
    """A grid value as YAML would read a scalar: true/false, an int, a float, else text."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip()


def parse_grid(specs: Sequence[str]) -> dict[str, list[Any]]:
    """``KEY=v1,v2,...`` each; a key given twice is an error."""
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise ValueError(f"--grid {spec!r}: expected KEY=v1,v2,...")
        if key in grid:
            raise ValueError(f"--grid {key}: given twice")
        grid[key] = [parse_value(v) for v in values.split(",") if v.strip()]
    return grid


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The product of the keys' values, the first key varying slowest."""
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*grid.values())]


def with_overrides(cfg: ComponentConfig, params: Mapping[str, Any]) -> ComponentConfig:
    """risk_harmoniser's config with each dotted key set, validated again (its rules and
    its error messages: a value out of range names the key)."""
    doc = cfg.model_dump(mode="json")
    for dotted, value in params.items():
        node: Any = doc
        parts = dotted.split(".")
        for part in parts[:-1]:
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"{COMPONENT}: unknown key {dotted!r}")
            node = node[part]
        if not isinstance(node, dict) or parts[-1] not in node or isinstance(node[parts[-1]], dict):
            raise ConfigError(f"{COMPONENT}: unknown key {dotted!r} (a value, not a section)")
        node[parts[-1]] = value
    return validate(COMPONENT, doc)


def current_values(cfg: ComponentConfig, keys: Iterable[str]) -> dict[str, Any]:
    """The config's own values of the grid's keys (the baseline)."""
    doc = cfg.model_dump(mode="json")
    out: dict[str, Any] = {}
    for dotted in keys:
        node: Any = doc
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        out[dotted] = node
    return out


def evaluate(
    configs: Mapping[str, ComponentConfig],
    quotes_by_seed: Mapping[int, Sequence[RawQuote]],
    params: Mapping[str, Any],
    train_frac: float,
) -> dict[str, Any]:
    """One grid point: train and test scores pooled over the seeds, and the uncounted trips."""
    cfgs = dict(configs)
    cfgs[COMPONENT] = with_overrides(configs[COMPONENT], params)
    train, test = Score(), Score()
    straddling = open_at_end = 0
    for seed in sorted(quotes_by_seed):
        quotes = quotes_by_seed[seed]
        split = split_ts_ns(quotes, train_frac)
        res = runner.Backtest(cfgs).run(quotes)
        trips, still_open = round_trips(res.fills)
        train.add(t for t in trips if t.close_ts_ns < split)
        test.add(t for t in trips if t.open_ts_ns >= split)
        straddling += sum(1 for t in trips if t.open_ts_ns < split <= t.close_ts_ns)
        open_at_end += still_open
    return {
        "params": dict(params),
        "train": train.to_dict(),
        "test": test.to_dict(),
        "straddling": straddling,
        "open_at_end": open_at_end,
    }


def choose(points: Sequence[Mapping[str, Any]], min_trades: int) -> tuple[int | None, bool]:
    """(index of the chosen point, whether it has >= min_trades train round trips)."""

    def key(i: int) -> tuple[float, float, int]:
        tr = points[i]["train"]
        return (tr["win_rate"], tr["net_pnl_usd"], -i)

    scored = [i for i, p in enumerate(points) if p["train"]["win_rate"] is not None]
    eligible = [i for i in scored if points[i]["train"]["round_trips"] >= min_trades]
    if eligible:
        return max(eligible, key=key), True
    if scored:
        return max(scored, key=key), False
    return None, False


def search(
    configs: Mapping[str, ComponentConfig],
    quotes_by_seed: Mapping[int, Sequence[RawQuote]],
    grid: Mapping[str, Sequence[Any]],
    train_frac: float = 0.5,
    min_trades: int = 5,
) -> dict[str, Any]:
    """The whole search: every point's scores, the chosen point (rules above), the baseline."""
    if not (0.0 < train_frac < 1.0):
        raise ValueError(f"train_frac must be in (0, 1), not {train_frac!r}")
    if not grid or any(len(v) == 0 for v in grid.values()):
        raise ValueError("the grid needs at least one key, each with at least one value")
    points = [evaluate(configs, quotes_by_seed, p, train_frac) for p in grid_points(grid)]
    index, enough = choose(points, min_trades)
    chosen = None
    if index is not None:
        chosen = {"index": index, "meets_min_trades": enough, **points[index]}
    return {
        "component": COMPONENT,
        "seeds": sorted(quotes_by_seed),
        "ticks": {str(s): len(q) for s, q in sorted(quotes_by_seed.items())},
        "train_frac": train_frac,
        "split": "by time within each seed's run: train = round trips closed before the "
        "quote at floor(train_frac * ticks), test = opened at or after it",
        "score": "win rate of closed round trips (per symbol, flat to flat, net of fees "
        "and funding), pooled over seeds; net PnL beside it",
        "min_trades": min_trades,
        "grid": {k: list(v) for k, v in grid.items()},
        "baseline": current_values(configs[COMPONENT], grid),
        "points": points,
        "chosen": chosen,
    }
