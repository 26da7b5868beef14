"""Walk-forward windows and (combinatorial) purged CV: hand-worked cases, skfolio, the CLI."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest

from services.backtest.metrics import sharpe_ratio
from services.backtest.numbers import NS_PER_DAY
from services.validation import cli, cpcv
from services.validation import walk_forward as wf

# --- CPCV: hand-worked -------------------------------------------------------------------


def test_ten_observations_five_folds_two_test_folds() -> None:
    # folds of 2: [0 1] [2 3] [4 5] [6 7] [8 9]; C(5, 2) = 10 splits, phi = 2/5 * 10 = 4
    splits = cpcv.cpcv_splits(10, 5, 2)
    assert len(splits) == cpcv.n_splits(5, 2) == 10
    assert cpcv.n_paths(5, 2) == 4
    assert [s.test_folds for s in splits] == list(itertools.combinations(range(5), 2))
    first = splits[0]  # test folds 0 and 1: one block 0..3
    assert first.train_idx.tolist() == [4, 5, 6, 7, 8, 9]
    assert [t.tolist() for t in first.test_idx] == [[0, 1], [2, 3]]
    last = splits[-1]  # test folds 3 and 4
    assert last.train_idx.tolist() == [0, 1, 2, 3, 4, 5]


def test_purge_and_embargo_by_hand() -> None:
    # n=20, N=5: folds of 4. Test folds 1 and 3 = blocks [4..7] and [12..15].
    # purge 1 drops 3 and 11 (before) and 8 and 16 (after); embargo 1 drops 9 and 17.
    splits = cpcv.cpcv_splits(20, 5, 2, purge=1, embargo=1)
    sp = next(s for s in splits if s.test_folds == (1, 3))
    assert sp.train_idx.tolist() == [0, 1, 2, 10, 18, 19]
    # test folds 0 and 1 are one block [0..7]: only 8 (purge) and 9 (embargo) go
    sp = next(s for s in splits if s.test_folds == (0, 1))
    assert sp.train_idx.tolist() == list(range(10, 20))


def test_skfolio_docstring_example() -> None:
    # skfolio's own example: 12 observations, N=3, k=2, purged_size=1
    trains = [s.train_idx.tolist() for s in cpcv.cpcv_splits(12, 3, 2, purge=1)]
    assert trains == [[9, 10, 11], [5, 6], [0, 1, 2]]
    trains = [s.train_idx.tolist() for s in cpcv.cpcv_splits(12, 3, 2, embargo=1)]
    assert trains == [[9, 10, 11], [5, 6, 7], [0, 1, 2, 3]]


@pytest.mark.parametrize(
    ("n", "n_folds", "k", "purge", "embargo"),
    [(20, 5, 2, 1, 1), (103, 6, 2, 3, 4), (200, 10, 3, 2, 5), (97, 7, 1, 2, 2), (60, 4, 3, 0, 6)],
)
def test_no_train_index_near_a_test_block(
    n: int, n_folds: int, k: int, purge: int, embargo: int
) -> None:
    for sp in cpcv.cpcv_splits(n, n_folds, k, purge, embargo):
        test = np.concatenate(sp.test_idx)
        train = set(sp.train_idx.tolist())
        assert not train & set(test.tolist())
        # every test position: nothing in [t - purge, t + purge + embargo] trains
        for t in test:
            assert not train & set(range(t - purge, t + purge + embargo + 1))
        # and everything else does
        assert len(train) + len(test) == n - _dropped(test, n, purge, embargo)


def _dropped(test: np.ndarray, n: int, purge: int, embargo: int) -> int:
    t = set(test.tolist())
    near = set()
    for i in t:
        near |= set(range(max(0, i - purge), min(n, i + purge + embargo + 1)))
    return len(near - t)


def test_paths_cover_every_fold_once() -> None:
    paths = cpcv.path_splits(6, 2)  # (N, phi) = (6, 5)
    assert paths.shape == (6, cpcv.n_paths(6, 2)) == (6, 5)
    combos = list(itertools.combinations(range(6), 2))
    for f in range(6):
        for p in range(5):
            assert f in combos[paths[f, p]]  # the split tests fold f
    # each split fills exactly k path slots
    assert np.bincount(paths.ravel()).tolist() == [2] * 15


def test_purged_kfold_is_one_test_fold() -> None:
    splits = cpcv.purged_kfold_splits(50, 5, purge=2, embargo=1)
    assert len(splits) == 5 and cpcv.n_paths(5, 1) == 1
    assert splits[2].train_idx.tolist() == [*range(0, 18), *range(33, 50)]


def test_purge_too_large_for_the_folds() -> None:
    with pytest.raises(ValueError, match="fold size"):
        cpcv.cpcv_splits(20, 5, 2, purge=2, embargo=1)  # 3 >= 4 - 1, as skfolio


# --- CPCV against skfolio ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "n_folds", "k", "purge", "embargo"),
    [
        (12, 3, 2, 1, 0),
        (12, 3, 2, 0, 1),
        (103, 6, 2, 3, 4),
        (200, 10, 3, 2, 5),
        (50, 5, 4, 1, 1),
        (1000, 8, 3, 10, 20),
    ],
)
def test_splits_match_skfolio(n: int, n_folds: int, k: int, purge: int, embargo: int) -> None:
    model_selection = pytest.importorskip("skfolio.model_selection")
    ref_cv = model_selection.CombinatorialPurgedCV(
        n_folds=n_folds, n_test_folds=k, purged_size=purge, embargo_size=embargo
    )
    ref = list(ref_cv.split(np.zeros((n, 1))))
    mine = cpcv.cpcv_splits(n, n_folds, k, purge, embargo)
    assert len(mine) == len(ref) == ref_cv.n_splits
    for sp, (ref_train, ref_tests) in zip(mine, ref, strict=True):
        assert np.array_equal(sp.train_idx, ref_train)
        assert len(sp.test_idx) == len(ref_tests)
        for a, b in zip(sp.test_idx, ref_tests, strict=True):
            assert np.array_equal(a, b)
    assert cpcv.n_paths(n_folds, k) == ref_cv.n_test_paths
    assert np.array_equal(cpcv.path_splits(n_folds, k), ref_cv.recombined_paths)


def test_report_paths_of_fixed_positions_are_the_whole_series() -> None:
    r = np.random.default_rng(3).normal(0.001, 0.01, 240)
    rep = cpcv.cpcv_report(r, 6, 2, purge=2, embargo=2, periods_per_year=252)
    assert rep["n_splits"] == 15 and rep["n_paths"] == 5
    for s in rep["path_sharpes"]:  # type: ignore[attr-defined]
        assert s == pytest.approx(sharpe_ratio(r, 252))


# --- walk-forward --------------------------------------------------------------------------


def _weekdays(start: str, end: str) -> np.ndarray:
    d = np.arange(np.datetime64(start), np.datetime64(end))
    return d[np.is_busday(d)].astype("datetime64[ns]").astype(np.int64)


def _day(s: str) -> int:
    return int(np.datetime64(s, "ns").astype(np.int64))


def test_seed000_windows_on_a_weekday_calendar() -> None:
    ts = _weekdays("2024-01-01", "2025-01-01")  # Monday 1 Jan to Tuesday 31 Dec 2024
    p = wf.PRESETS["seed000"]
    splits = wf.walk_forward_splits(ts, p.train_days, p.test_days, p.step_days)
    # test windows end at day 210 + 30 j <= 366: j = 0..5
    assert len(splits) == 6
    s0 = splits[0]
    # train [1 Jan, 29 Jun) = 180 calendar days; 29 Jun 2024 is a Saturday
    assert (s0.train_start_ns, s0.train_end_ns) == (_day("2024-01-01"), _day("2024-06-29"))
    # 180 days from a Monday = 25 weeks + Mon..Fri: 25 * 5 + 5 = 130 weekdays
    assert s0.train_idx.size == np.busday_count("2024-01-01", "2024-06-29") == 130
    assert ts[s0.train_idx[-1]] == _day("2024-06-28")  # the Friday
    assert ts[s0.test_idx[0]] == _day("2024-07-01")  # the Monday after the weekend
    assert s0.test_idx.size == np.busday_count("2024-06-29", "2024-07-29")
    # rolling: each window moves by 30 days
    assert splits[1].train_start_ns - s0.train_start_ns == 30 * NS_PER_DAY
    assert splits[1].test_start_ns - s0.test_start_ns == 30 * NS_PER_DAY
    # no overlap of train and test, and tests do not overlap each other
    for sp in splits:
        assert ts[sp.train_idx[-1]] < ts[sp.test_idx[0]]
    tests = np.concatenate([sp.test_idx for sp in splits])
    assert np.unique(tests).size == tests.size


def test_seed003_purge_and_expanding() -> None:
    ts = _weekdays("2024-01-01", "2025-01-01")
    p = wf.PRESETS["seed003"]
    assert (p.train_days, p.purge_days, p.test_days) == (120, 5, 30)
    splits = wf.walk_forward_splits(
        ts, p.train_days, p.test_days, p.step_days, p.purge_days, mode="expanding"
    )
    assert len(splits) == 8  # 125 + 30 + 30 j <= 366
    for sp in splits:
        assert sp.train_start_ns == _day("2024-01-01")  # expanding
        assert sp.test_start_ns - sp.train_end_ns == 5 * NS_PER_DAY
        assert ts[sp.test_idx[0]] - ts[sp.train_idx[-1]] > 5 * NS_PER_DAY
    # train [1 Jan, 30 Apr) = 120 days; purge 30 Apr..4 May; test from Sunday 5 May, so
    # its first observation is Monday 6 May
    assert splits[0].train_end_ns == _day("2024-04-30")
    assert ts[splits[0].test_idx[0]] == _day("2024-05-06")
    assert splits[1].train_idx.size > splits[0].train_idx.size


def test_a_gap_drops_the_segment_and_partial_tests_are_left_out() -> None:
    ts = _weekdays("2024-01-01", "2024-12-01")
    # remove the second test window (30 Jul - 28 Aug) from the data
    ts = ts[(ts < _day("2024-07-29")) | (ts >= _day("2024-08-28"))]
    splits = wf.walk_forward_splits(ts, 180, 30, 30)
    starts = [sp.test_start_ns for sp in splits]
    assert _day("2024-07-29") not in starts
    assert all(sp.test_end_ns <= _day("2024-12-01") for sp in splits)


def test_segment_metrics_by_hand() -> None:
    m = wf.segment_metrics(np.array([0.1, -0.05, 0.0, 0.02]), periods_per_year=252)
    assert m["total_return"] == pytest.approx(1.1 * 0.95 * 1.02 - 1)
    assert m["max_drawdown"] == pytest.approx(0.05)  # 1.1 -> 1.045
    assert m["hit_rate"] == pytest.approx(2 / 3)  # the flat period is not counted
    r = np.array([0.1, -0.05, 0.0, 0.02])
    assert m["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(252))


def test_is_robust_rule() -> None:
    yes = wf.stability([1.0, -1.0, 2.0, 0.5, -0.2])  # mean 0.46, 3 of 5 positive
    assert yes["positive_frac"] == pytest.approx(0.6) and wf.is_robust(yes)
    no = wf.stability([1.0, -1.0, 2.0, -0.5, -0.2])  # 2 of 5 positive
    assert not wf.is_robust(no)
    assert not wf.is_robust(wf.stability([3.0]))  # one segment
    assert not wf.is_robust(wf.stability([-5.0, 1.0, 1.0]))  # mean < 0


# --- CLI --------------------------------------------------------------------------------


def _write_csv(path: object, ts: np.ndarray, pos: np.ndarray, ret: np.ndarray) -> None:
    lines = ["ts,position,asset_return"]
    lines += [f"{t},{p},{r}" for t, p, r in zip(ts, pos, ret, strict=True)]
    lines.insert(5, "not-a-time,1,0.01")  # line 6 of the file
    with open(path, "w") as fh:  # type: ignore[call-overload]
        fh.write("\n".join(lines) + "\n")


def test_cli_walk_forward_and_cpcv(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(7)
    ts = _weekdays("2022-01-03", "2024-01-01")
    ret = rng.normal(0, 0.01, ts.size)
    pos = np.sign(ret)  # knows the sign of the return: every segment wins
    f = tmp_path / "r.csv"
    _write_csv(f, ts, pos, ret)

    assert cli.main(["walk-forward", "--returns", str(f), "--preset", "seed003"]) == 0
    out, err = capsys.readouterr()
    doc = orjson.loads(out)
    assert "line 6" in err
    assert doc["is_robust"] is True and doc["purge_days"] == 5
    assert doc["stability"]["positive_frac"] == 1.0
    assert len(doc["segments"]) == doc["stability"]["n_segments"] > 10
    assert set(doc["summary"]["sharpe"]) >= {"mean", "std"}
    assert sorted(doc["sharpe_by_year"]) == ["2022", "2023"]
    assert sum(y["n"] for y in doc["sharpe_by_year"].values()) == len(doc["segments"])

    argv = ["cpcv", "--returns", str(f), "--folds", "6", "--test-folds", "2"]
    assert cli.main([*argv, "--purge", "3", "--embargo", "2", "--fit", "sign"]) == 0
    doc = orjson.loads(capsys.readouterr()[0])
    assert (doc["n_splits"], doc["n_paths"]) == (15, 5)
    assert doc["path_sharpe"]["mean"] > 5 and doc["path_sharpe"]["std"] == pytest.approx(0)

    assert cli.main([*argv, "--purge", "400"]) == 2  # purge longer than a fold
    assert cli.main(["cpcv", "--returns", str(tmp_path / "missing.csv")]) == 1


def test_edgebus_validate_cpcv_subprocess(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ts = _weekdays("2023-01-02", "2023-07-01")
    ret = np.random.default_rng(1).normal(0, 0.01, ts.size)
    f = tmp_path / "r.csv"
    _write_csv(f, ts, np.ones(ts.size), ret)
    argv = ["validate", "cpcv", "--returns", str(f), "--folds", "5", "--test-folds", "2"]
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-m", "shared.cli", *argv], cwd=root, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    doc = orjson.loads(done.stdout)
    assert (doc["n_splits"], doc["n_paths"], doc["n_obs"]) == (10, 4, ts.size)
    assert b"line 6" in done.stderr
