"""`edgebus validate robustness` (services/validation/robustness.py, docs/validation.md)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from services.validation import cli as validate_cli
from services.validation import robustness as rb
from shared.messages import RawQuote


def _quotes(n: int, seed: int = 1) -> list[RawQuote]:
    """Two symbols, interleaved, a random walk of mids with a fixed spread of 2 and 0.5."""
    rng = np.random.default_rng(seed)
    out: list[RawQuote] = []
    mids = {"AAA": 100.0, "BBB": 20.0}
    spreads = {"AAA": 2.0, "BBB": 0.5}
    for i in range(n):
        sym = "AAA" if i % 2 == 0 else "BBB"
        mids[sym] *= float(np.exp(rng.normal(0.0, 0.002)))
        half = spreads[sym] / 2
        out.append(RawQuote(symbol=sym, ts_ns=1 + i, bid=mids[sym] - half, ask=mids[sym] + half))
    return out


def _log_returns(quotes: Sequence[RawQuote], sym: str) -> np.ndarray:
    mids = np.array([(q.bid + q.ask) / 2 for q in quotes if q.symbol == sym])
    return np.diff(np.log(mids))


@pytest.mark.parametrize("level", rb.DEFAULT_LEVELS)
def test_noise_is_zero_mean_at_the_stated_fraction_of_the_returns_std(level: float) -> None:
    clean = _quotes(20_000)
    noisy = rb.perturb_quotes(clean, level, seed=3)
    for sym in ("AAA", "BBB"):
        r, r_noisy = _log_returns(clean, sym), _log_returns(noisy, sym)
        noise = r_noisy - r
        sigma = float(np.std(r, ddof=1))
        # 10,000 draws: the std of the sample std is about 0.7 %, of the mean 1 % of sigma_e
        assert np.std(noise, ddof=1) == pytest.approx(level * sigma, rel=0.03)
        assert abs(float(np.mean(noise))) < 0.04 * level * sigma
    for q0, q1 in zip(clean, noisy, strict=True):
        assert q1.ask - q1.bid == pytest.approx(q0.ask - q0.bid, abs=1e-9)
        assert (q1.symbol, q1.ts_ns) == (q0.symbol, q0.ts_ns)


def test_noise_is_deterministic_for_a_seed() -> None:
    clean = _quotes(500)
    a = rb.perturb_quotes(clean, 0.05, seed=11)
    b = rb.perturb_quotes(clean, 0.05, seed=11)
    c = rb.perturb_quotes(clean, 0.05, seed=12)
    assert [(q.bid, q.ask) for q in a] == [(q.bid, q.ask) for q in b]
    assert [(q.bid, q.ask) for q in a] != [(q.bid, q.ask) for q in c]
    assert rb.perturb_quotes(clean, 0.0, seed=11) == clean
    assert a[0].bid == pytest.approx(clean[0].bid, rel=1e-12)  # a symbol's first mid is kept


def test_bad_quotes_are_left_as_they_are() -> None:
    clean = _quotes(50)
    clean[10] = clean[10].model_copy(update={"bid": float("nan")})
    noisy = rb.perturb_quotes(clean, 0.1, seed=0)
    assert noisy[10] is clean[10]


def test_score_rule_on_hand_made_sharpes() -> None:
    # clean 2.0, band 50 %: a run holds in [1.0, 3.0]
    assert rb.robustness_score(2.0, [1.0, 3.0, 2.5, 1.5]) == 1.0
    assert rb.robustness_score(2.0, [0.9, 3.1, -2.0, 2.0]) == 0.25
    assert rb.robustness_score(2.0, []) == 0.0
    # no edge to keep: a clean Sharpe <= 0 scores 0 whatever the noisy runs do
    assert rb.robustness_score(-1.0, [-1.0, -1.0]) == 0.0
    assert rb.robustness_score(0.0, [0.0]) == 0.0
    assert rb.robustness_score(2.0, [float("nan"), 2.0]) == 0.5
    assert rb.recommendation(1.0) == rb.recommendation(0.8) == "ROBUST"
    assert rb.recommendation(0.79) == rb.recommendation(0.5) == "FRAGILE"
    assert rb.recommendation(0.49) == "NOT_ROBUST"


def test_analyse_with_a_stub_run() -> None:
    """The stub's Sharpe is the first mid's relative move: noise degrades it with the level."""
    clean = _quotes(400)
    first = (clean[-2].bid + clean[-2].ask) / 2

    def run(quotes: Sequence[RawQuote]) -> rb.RunMetrics:
        last = (quotes[-2].bid + quotes[-2].ask) / 2
        return rb.RunMetrics(sharpe=1.0 + 100 * (last / first - 1), net_pnl_usd=last - first)

    res = rb.analyse(clean, run, levels=(0.01, 0.5), n_seeds=4, seed=5)
    assert res.clean.sharpe == 1.0
    assert [lv.seeds for lv in res.levels] == [[5, 6, 7, 8]] * 2
    assert res.levels[0].sharpe["std"] < res.levels[1].sharpe["std"]
    assert res.levels[0].score == 1.0
    noisy = [r.sharpe for lv in res.levels for r in lv.runs]
    assert res.robustness_score == rb.robustness_score(1.0, noisy)
    assert res.recommendation == rb.recommendation(res.robustness_score)
    doc = res.as_dict()
    assert doc["n_noisy_runs"] == 8 and "null_hypothesis" in doc


def test_equity_sharpe() -> None:
    day = 86_400 * 10**9
    ts = [i * day for i in range(5)]
    assert rb.equity_sharpe(ts, [100.0, 100.0, 100.0, 100.0, 100.0]) == 0.0
    assert rb.equity_sharpe(ts[:2], [100.0, 101.0]) == 0.0
    eq = [100.0, 101.0, 100.5, 102.0, 103.0]
    r = np.diff(eq) / np.array(eq[:-1])
    ppy = 3 / (3 / 365.25)  # the returns' marks span 3 days
    assert rb.equity_sharpe(ts, eq) == pytest.approx(r.mean() / r.std(ddof=1) * np.sqrt(ppy))


def test_cli_synthetic_run_writes_json_and_figure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fig = tmp_path / "robustness.png"
    argv = ["robustness", "--synthetic", "--ticks", "800", "--seed", "7"]
    argv += ["--levels", "0.01,0.1", "--seeds", "1", "--figure", str(fig)]
    assert validate_cli.main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [lv["level"] for lv in doc["levels"]] == [0.01, 0.1]
    for lv in doc["levels"]:
        assert set(lv["sharpe"]) == {"mean", "std", "min", "max"}
        assert set(lv["net_pnl_usd"]) == {"mean", "std", "min", "max"}
    assert 0.0 <= doc["robustness_score"] <= 1.0
    assert doc["recommendation"] in ("ROBUST", "FRAGILE", "NOT_ROBUST")
    assert doc["ticks"] == 800 and doc["n_noisy_runs"] == 2
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert validate_cli.main(["robustness", "--synthetic", "--levels", "x"]) == 2
    assert validate_cli.main(["robustness", "--synthetic", "--seeds", "0"]) == 2
    assert validate_cli.main(["robustness"]) == 2
    assert validate_cli.main(["robustness", "/nonexistent/quotes.csv"]) == 1
