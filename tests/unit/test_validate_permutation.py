"""`edgebus validate permutation` (issue 18 item 1): the null, the p-value convention, the
false-positive rate over many seeds, a cross-check against scipy, and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from services.validation import cli as validate_cli
from services.validation import permutation as perm
from shared import cli


def _market(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 0.01, size=n)


# --- hand-worked ------------------------------------------------------------------------


def test_hand_worked_sharpe_and_p_value() -> None:
    # r = (0.01, -0.01, 0.02): mean 0.02/3, std(ddof=1) 0.01 * sqrt(7/3), so
    # Sharpe = 2 / sqrt(21) per period and 2 / sqrt(21) * sqrt(252) = 4 * sqrt(3) a year.
    r = np.array([0.01, -0.01, 0.02])
    assert float(perm.annualised_sharpe(r, 252.0)) == pytest.approx(4 * math.sqrt(3))
    assert float(perm.total_return(r)) == pytest.approx(0.02)
    # null (0.1, 0.5, 0.3, 0.5), observed 0.5: two draws >= it, so p = (1 + 2) / (1 + 4)
    null = np.array([0.1, 0.5, 0.3, 0.5])
    assert perm.p_value(0.5, null) == pytest.approx(3 / 5)
    assert perm.percentile_rank(0.5, null) == pytest.approx(50.0)


def test_hand_worked_circular_shift() -> None:
    # positions (1, 0, -1) on returns (0.02, 0, -0.01): observed total 0.02 + 0.01 = 0.03.
    # The two shifts give positions (0, -1, 1) -> -0.01 and (-1, 1, 0) -> -0.02: every
    # draw is below the observed, so p = 1 / (N + 1) and the percentile rank is 100.
    res = perm.permutation_test(
        [1.0, 0.0, -1.0], [0.02, 0.0, -0.01], n_permutations=99, seed=1, method="shift"
    )
    assert res.observed_return == pytest.approx(0.03)
    assert res.p_value_return == pytest.approx(1 / 100)
    assert res.percentile_rank_return == 100.0
    assert res.n_permutations == 99


def test_constant_position_is_never_significant() -> None:
    # every re-pairing of a constant position is the observed one: all ties, p = 1
    res = perm.permutation_test(np.ones(50), _market(3, 50), n_permutations=200, seed=0)
    assert res.p_value_sharpe == 1.0
    assert res.p_value_return == 1.0
    assert not res.is_significant


# --- the acceptance: informed positions pass, random ones fail at the 1 % rate --------------


def test_positions_that_know_the_sign_are_significant() -> None:
    for seed in range(20):
        ret = _market(seed, 250)
        res = perm.permutation_test(np.sign(ret), ret, n_permutations=1000, seed=seed)
        assert res.is_significant, (seed, res)
        assert res.p_value_sharpe == pytest.approx(1 / 1001)
        assert res.p_value_return == pytest.approx(1 / 1001)
        assert res.percentile_rank_sharpe == 100.0


def test_a_modest_edge_is_significant_over_enough_periods() -> None:
    # the sign right 60 % of the time over 2,000 periods (Sharpe about 6 a year)
    rng = np.random.default_rng(11)
    ret = rng.normal(0.0, 0.01, size=2000)
    right = rng.random(2000) < 0.6
    pos = np.where(right, np.sign(ret), -np.sign(ret))
    res = perm.permutation_test(pos, ret, n_permutations=1000, seed=11)
    assert res.is_significant
    assert perm.permutation_test(
        pos, ret, n_permutations=1000, seed=11, method="shift"
    ).is_significant


def test_false_positive_rate_of_random_positions() -> None:
    """2,000 experiments (seeds), random positions on the same returns, N = 200 each: under
    H0, P(p <= 0.01) = 2 / 201 = 1.0 %, so about 20 rejections; 36 or more (1.8 %) would
    happen with probability < 0.1 % (binomial): a rate that high means an anti-conservative
    test."""
    chunks, per_chunk, n_periods, n_perm = 20, 100, 100, 200
    experiments = chunks * per_chunk
    p_all = []
    for chunk in range(chunks):
        rng = np.random.default_rng(1000 + chunk)
        ret = rng.normal(0.0, 0.01, size=(per_chunk, n_periods))
        pos = rng.choice([-1.0, 1.0], size=(per_chunk, n_periods))
        p_all.append(perm.p_values_many(pos, ret, n_permutations=n_perm, rng=rng))
    p = np.concatenate(p_all)
    assert ((p > 0) & (p <= 1)).all()
    rejected = int(np.count_nonzero(p <= perm.DEFAULT_ALPHA))
    print(
        f"false-positive rate at the 99th percentile: {rejected / experiments:.2%} "
        f"({rejected}/{experiments})"
    )
    assert stats.binom(experiments, 2 / 201).sf(rejected - 1) > 0.001
    assert rejected <= 35
    # and the p-values are about uniform
    assert abs(float(np.mean(p <= 0.05)) - 0.05) < 0.015
    assert 0.45 < float(np.median(p)) < 0.55


def test_random_positions_through_permutation_test_over_seeds() -> None:
    # the full function (N = 1000) on 100 seeds: at most 4 rejections (binomial margin:
    # P(Binom(100, 0.01) > 4) = 0.3 %)
    rejected = 0
    for seed in range(100):
        rng = np.random.default_rng(seed)
        ret = rng.normal(0.0, 0.01, size=200)
        pos = rng.choice([-1.0, 0.0, 1.0], size=200)
        rejected += perm.permutation_test(pos, ret, n_permutations=1000, seed=seed).is_significant
    print(f"permutation_test, 100 seeds: {rejected} significant at the 99th percentile")
    assert rejected <= 4


# --- against scipy.stats.permutation_test ----------------------------------------------


def _scipy_p(pos: np.ndarray, ret: np.ndarray, n_resamples: int, seed: int) -> float:
    def statistic(x: np.ndarray, y: np.ndarray, axis: int) -> np.ndarray:
        return perm.annualised_sharpe(np.moveaxis(x * y, axis, -1), 252.0)

    res = stats.permutation_test(
        (pos, ret),
        statistic,
        permutation_type="pairings",
        vectorized=True,
        n_resamples=n_resamples,
        alternative="greater",
        rng=np.random.default_rng(seed),
    )
    return float(res.pvalue)


def test_matches_scipy_exact_on_six_periods() -> None:
    # 6! = 720 pairings: scipy enumerates them all; ours samples 20,000 (SE < 0.004)
    pos = np.array([1.0, -1.0, 0.5, 1.0, -0.5, 0.0])
    for seed in range(3):
        ret = _market(seed, 6)
        ours = perm.permutation_test(pos, ret, n_permutations=20_000, seed=seed).p_value_sharpe
        exact = _scipy_p(pos, ret, 10_000, seed)
        assert ours == pytest.approx(exact, abs=5 * math.sqrt(exact * (1 - exact) / 20_000) + 1e-4)


def test_matches_scipy_monte_carlo_on_forty_periods() -> None:
    n = 5000
    for seed in range(3):
        rng = np.random.default_rng(seed)
        ret = rng.normal(0.0, 0.01, size=40)
        pos = np.sign(ret + rng.normal(0.0, 0.015, size=40))  # a weak edge: p in the middle
        ours = perm.permutation_test(pos, ret, n_permutations=n, seed=seed).p_value_sharpe
        theirs = _scipy_p(pos, ret, n, seed + 100)
        se = math.sqrt(2 * theirs * (1 - theirs) / n)
        assert ours == pytest.approx(theirs, abs=5 * se + 2 / n)


# --- properties --------------------------------------------------------------------------

ints = st.lists(st.integers(-100, 100), min_size=3, max_size=40)


@settings(max_examples=40, deadline=None)
@given(ints, st.integers(0, 2**32 - 1), st.floats(1e-3, 1e3), st.sampled_from(["shuffle", "shift"]))
def test_p_value_in_unit_interval_and_invariant_to_scale(
    raw: list[int], seed: int, scale: float, method: perm.Method
) -> None:
    ret = np.array(raw, dtype=np.float64) / 1000.0
    pos = np.random.default_rng(seed).choice([-1.0, 0.0, 0.5, 1.0], size=ret.size)
    a = perm.permutation_test(pos, ret, n_permutations=200, seed=seed, method=method)
    b = perm.permutation_test(pos, ret * scale, n_permutations=200, seed=seed, method=method)
    for p in (a.p_value_sharpe, a.p_value_return):
        assert 0.0 < p <= 1.0
    assert b.p_value_sharpe == a.p_value_sharpe
    assert b.p_value_return == a.p_value_return


# --- the CLI -----------------------------------------------------------------------------


def test_cli_returns_file_with_a_bad_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ret = _market(5, 300)
    lines = ["ts, position, asset_return"]
    base_ns = 1_700_000_000 * 10**9
    for i, r in enumerate(ret):
        ts = f"2024-01-{1 + i % 28:02d}T{i // 28:02d}:00:00Z" if i % 2 else str(base_ns + i)
        lines.append(f"{ts},{float(np.sign(r))},{float(r)!r}")
    lines.insert(10, "not-a-time,1,0.01")  # file line 11
    lines.insert(20, "2024-02-01,one,0.01")  # file line 21
    f = tmp_path / "r.csv"
    f.write_text("\n".join(lines) + "\n")
    rc = cli.main(["validate", "permutation", "--returns", str(f), "--seed", "3"])
    out, err = capsys.readouterr()
    assert rc == 0
    doc = json.loads(out)
    for key in (
        "p_value_sharpe",
        "percentile_rank_sharpe",
        "p_value_return",
        "percentile_rank_return",
        "observed_sharpe",
        "observed_return",
        "is_significant",
        "n_permutations",
        "seed",
        "null",
    ):
        assert key in doc
    assert doc["is_significant"] is True
    assert doc["n_permutations"] == 1000 and doc["seed"] == 3
    assert doc["bad_rows"] == 2 and doc["n_periods"] == 300
    assert "line 11" in err and "line 21" in err


def test_cli_backtest_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a long position held over a rise, flat over a fall, from fills.csv
    (tmp_path / "equity.csv").write_text(
        "ts,ts_ns,equity_usd,gross_pnl_usd,net_pnl_usd,fees_usd,drawdown_pct\n"
        "2024-01-01T00:00:00Z,1704067200000000000,1000.0,0,0,0,0\n"
    )
    rows = ["fill_id,order_id,symbol,ts_ns,side,qty,price,fee,slippage_bps,mid"]
    prices = [100.0, 110.0, 110.0, 99.0, 99.0, 105.0]
    for i, (side, price) in enumerate(zip(["buy", "sell"] * 3, prices, strict=True)):
        rows.append(f"f{i},o{i},X,{1704067200000000000 + i * 60 * 10**9},{side},1,{price},0,0,")
    (tmp_path / "fills.csv").write_text("\n".join(rows) + "\n")
    rc = cli.main(["validate", "permutation", "--backtest", str(tmp_path), "--permutations", "50"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert doc["source"] == "fills" and doc["n_periods"] == 5
    # long 100/1000 of equity over +10 %, 110/1000 over -10 %, 99/1000 over +6.06 %; flat
    # between a sell and the next buy (the price does not move there)
    assert doc["observed_return"] == pytest.approx(0.1 * 0.1 - 0.11 * 0.1 + 0.099 * 6 / 99)


def test_cli_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert validate_cli.main(["nonsense"]) == 2
    assert validate_cli.main([]) == 2
    assert "permutation" in validate_cli.COMMANDS
    assert cli.main(["validate", "permutation", "--returns", "/nonexistent.csv"]) == 1
    capsys.readouterr()


def test_cli_no_usable_rows_is_an_error_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "r.csv"
    f.write_text("ts,position,asset_return\nyesterday,1,0.01\n2024-01-02,1,inf\n")
    assert cli.main(["validate", "permutation", "--returns", str(f)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "line 2" in err and "line 3" in err and "0 usable periods" in err
