"""Confidence calibration (issue 19 item 1): the reliability table against a hand-worked
example and scikit-learn's calibration_curve, the calibrators against scikit-learn's
isotonic and logistic regressions, their properties, the online calibrator, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.calibration import calibration_curve
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from services.calibration import calibrator as cal
from services.calibration import cli as calibrate_cli
from shared import cli

KINDS = ("buckets", "isotonic", "platt")


def _stream(seed: int, n: int, power: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """n predictions c ~ U(0, 1) whose hit probability is c ** power (1: calibrated)."""
    rng = np.random.default_rng(seed)
    c = rng.random(n)
    return c, (rng.random(n) < c**power).astype(np.float64)


# --- hand-worked ------------------------------------------------------------------------


def test_hand_worked_two_buckets() -> None:
    # Two uniform buckets, [0, 0.5] and (0.5, 1]: 0.5 sits on the interior edge and goes to
    # the lower bucket (calibration_curve's convention).
    #   bucket 0: c = .1 .2 .3 .4 .5, y = 0 0 1 0 1 -> conf 1.5 / 5 = 0.3, hits 2 / 5 = 0.4
    #   bucket 1: c = .6 .7 .8 .9 1., y = 1 1 0 1 1 -> conf 4.0 / 5 = 0.8, hits 4 / 5 = 0.8
    # ECE = 5/10 * |0.4 - 0.3| + 5/10 * |0.8 - 0.8| = 0.05; MCE = 0.1.
    # Brier = (.01 + .04 + .49 + .16 + .25 + .16 + .09 + .64 + .01 + 0) / 10 = 1.85 / 10.
    c = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    y = [0, 0, 1, 0, 1, 1, 1, 0, 1, 1]
    rel = cal.reliability(c, y, n_buckets=2)
    assert rel.ece == pytest.approx(0.05)
    assert rel.mce == pytest.approx(0.1)
    assert rel.brier == pytest.approx(0.185)
    assert rel.n == 10
    b0, b1 = rel.buckets
    assert (b0.lower, b0.upper, b0.n) == (0.0, 0.5, 5)
    assert (b0.mean_confidence, b0.hit_rate, b0.gap) == pytest.approx((0.3, 0.4, 0.1))
    assert (b1.lower, b1.upper, b1.n) == (0.5, 1.0, 5)
    assert (b1.mean_confidence, b1.hit_rate, b1.gap) == pytest.approx((0.8, 0.8, 0.0))
    # bucket calibrator, prior toward the midpoint with k = 2 pseudo-predictions:
    # v0 = (2 + 2 * 0.25) / (5 + 2) = 2.5 / 7, v1 = (4 + 2 * 0.75) / 7 = 5.5 / 7
    fitted = cal.BucketCalibrator(n_buckets=2).fit(c, y)
    assert fitted.transform([0.0, 0.5, 0.51, 1.0]) == pytest.approx(
        [2.5 / 7, 2.5 / 7, 5.5 / 7, 5.5 / 7]
    )
    # toward the bucket's mean raw confidence: (2 + 2 * 0.3) / 7 and (4 + 2 * 0.8) / 7
    fitted = cal.BucketCalibrator(n_buckets=2, prior="confidence").fit(c, y)
    assert fitted.transform([0.2, 0.9]) == pytest.approx([2.6 / 7, 5.6 / 7])


def test_empty_buckets_are_null_in_the_table_and_left_out_of_mce() -> None:
    rel = cal.reliability([0.05, 0.95], [0, 1], n_buckets=10)
    assert [b.n for b in rel.buckets] == [1, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    assert np.isnan(rel.buckets[5].hit_rate)
    assert rel.mce == pytest.approx(0.05)
    doc = json.loads(orjson.dumps(rel.as_dict()))
    assert doc["buckets"][5]["mean_confidence"] is None


def test_pool_adjacent_violators_by_hand() -> None:
    # (1, 0, 1): the first two violate, pool to 0.5; weights (1, 3, 1): (1 + 0) / 4 = 0.25
    assert cal.pool_adjacent_violators([1, 0, 1], [1, 1, 1]) == pytest.approx([0.5, 0.5, 1])
    assert cal.pool_adjacent_violators([1, 0, 1], [1, 3, 1]) == pytest.approx([0.25, 0.25, 1])
    assert cal.pool_adjacent_violators([3, 2, 1], [1, 1, 1]) == pytest.approx([2, 2, 2])


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        cal.reliability([1.2], [1])
    with pytest.raises(ValueError, match="0 or 1"):
        cal.reliability([0.5], [2])
    with pytest.raises(ValueError, match="outcomes"):
        cal.reliability([0.5, 0.6], [1])
    with pytest.raises(ValueError, match="strategy"):
        cal.reliability([0.5], [1], strategy="log")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="known"):
        cal.calibrator_for("beta")


# --- scikit-learn agreement ---------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
@pytest.mark.parametrize("n_buckets", [2, 10, 15])
def test_ece_matches_calibration_curve(strategy: cal.Strategy, n_buckets: int) -> None:
    c, y = _stream(7, 3000, power=2.0)
    # confidences on the uniform edges exercise the right-edge convention
    c[:50] = np.round(c[:50] * n_buckets) / n_buckets
    rel = cal.reliability(c, y, n_buckets, strategy)
    prob_true, prob_pred = calibration_curve(y, c, n_bins=n_buckets, strategy=strategy)
    # calibration_curve's own bins: edges, then searchsorted on the interior edges
    if strategy == "uniform":
        bins = np.linspace(0.0, 1.0, n_buckets + 1)
    else:
        bins = np.percentile(c, np.linspace(0, 1, n_buckets + 1) * 100)
    counts = np.bincount(np.searchsorted(bins[1:-1], c), minlength=n_buckets)
    counts = counts[counts > 0]
    ece_sklearn = float(np.sum(counts / c.size * np.abs(prob_true - prob_pred)))
    assert rel.ece == pytest.approx(ece_sklearn, abs=1e-12)
    table = [b for b in rel.buckets if b.n > 0]
    assert [b.n for b in table] == counts.tolist()
    assert [b.hit_rate for b in table] == pytest.approx(prob_true.tolist(), abs=1e-12)
    assert [b.mean_confidence for b in table] == pytest.approx(prob_pred.tolist(), abs=1e-12)
    assert rel.mce == pytest.approx(float(np.max(np.abs(prob_true - prob_pred))), abs=1e-12)


def test_isotonic_equals_sklearn() -> None:
    c, y = _stream(3, 4000, power=2.0)
    c = np.round(c * 0.8 + 0.1, 3)  # ties, and a range inside (0, 1) to test clipping
    ours = cal.IsotonicCalibrator().fit(c, y)
    ref = IsotonicRegression(out_of_bounds="clip").fit(c, y)
    grid = np.concatenate([np.linspace(0.0, 1.0, 2001), c])
    assert np.max(np.abs(ours.transform(grid) - ref.predict(grid))) < 1e-9


@pytest.mark.parametrize("power", [0.5, 2.0])
def test_platt_close_to_sklearn_logistic_regression(power: float) -> None:
    c, y = _stream(5, 5000, power=power)
    ours = cal.PlattCalibrator(l2=1e-6).fit(c, y)
    z = cal.logit(c).reshape(-1, 1)
    ref = LogisticRegression(C=1e6, tol=1e-12, max_iter=10_000).fit(z, y)
    assert ours.a == pytest.approx(float(ref.coef_[0, 0]), abs=1e-4)
    assert ours.b == pytest.approx(float(ref.intercept_[0]), abs=1e-4)
    grid = np.linspace(0.0, 1.0, 501)
    expected = ref.predict_proba(cal.logit(grid).reshape(-1, 1))[:, 1]
    assert np.max(np.abs(ours.transform(grid) - expected)) < 1e-4


def test_platt_never_decreases_and_survives_one_sided_data() -> None:
    # outcomes anti-correlated with confidence: the a >= 0 constraint gives a constant
    c = np.linspace(0.01, 0.99, 200)
    y = (c < 0.5).astype(np.float64)
    fitted = cal.PlattCalibrator().fit(c, y)
    assert fitted.a == 0.0
    assert fitted.transform([0.1, 0.9]) == pytest.approx([0.5, 0.5], abs=1e-6)
    # all hits: finite parameters (the L2 on the intercept), output near 1
    fitted = cal.PlattCalibrator().fit(c, np.ones_like(c))
    assert np.isfinite(fitted.b) and float(fitted.transform(0.5)) > 0.999


# --- properties -------------------------------------------------------------------------

predictions = st.integers(1, 60).flatmap(
    lambda n: st.tuples(
        st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n),
        st.lists(st.integers(0, 1), min_size=n, max_size=n),
    )
)


@settings(max_examples=150, deadline=None)
@given(predictions, st.integers(1, 20), st.sampled_from(["uniform", "quantile"]))
def test_ece_in_unit_interval_and_mce_at_least_ece(
    data: tuple[list[float], list[int]], n_buckets: int, strategy: cal.Strategy
) -> None:
    c, y = data
    rel = cal.reliability(c, y, n_buckets, strategy)
    assert 0.0 <= rel.ece <= 1.0
    assert rel.mce >= rel.ece - 1e-12
    assert 0.0 <= rel.brier <= 1.0
    assert sum(b.n for b in rel.buckets) == len(c)


@settings(max_examples=3, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["uniform", "quantile"]))
def test_calibrated_data_has_small_ece(seed: int, strategy: cal.Strategy) -> None:
    c, y = _stream(seed, 200_000)
    assert cal.reliability(c, y, 10, strategy).ece < 0.01


@settings(max_examples=60, deadline=None)
@given(predictions, st.sampled_from([*KINDS, "online"]))
def test_calibrators_are_monotone_and_in_unit_interval(
    data: tuple[list[float], list[int]], kind: str
) -> None:
    c, y = data
    fitted: cal.Calibrator | cal.OnlineCalibrator
    if kind == "online":
        fitted = cal.OnlineCalibrator(half_life=5.0)
        for ci, yi in zip(c, y, strict=True):
            fitted.update(ci, bool(yi))
    else:
        fitted = cal.calibrator_for(kind)().fit(c, y)
    grid = np.concatenate([np.linspace(0.0, 1.0, 401), np.sort(np.asarray(c))])
    grid.sort()
    out = fitted.transform(grid)
    assert np.all((out >= 0.0) & (out <= 1.0))
    assert np.all(np.diff(out) >= -1e-12)


@pytest.mark.parametrize("kind", [*KINDS, "online"])
def test_calibrating_a_miscalibrated_stream_lowers_held_out_ece(kind: str) -> None:
    # the model says c, the truth is c^2: over-confident everywhere but at 0 and 1
    c_fit, y_fit = _stream(21, 20_000, power=2.0)
    c_test, y_test = _stream(22, 20_000, power=2.0)
    fitted: cal.Calibrator | cal.OnlineCalibrator
    if kind == "online":
        fitted = cal.OnlineCalibrator()
        for ci, yi in zip(c_fit.tolist(), y_fit.tolist(), strict=True):
            fitted.update(ci, yi == 1.0)
    else:
        fitted = cal.calibrator_for(kind)().fit(c_fit, y_fit)
    raw = cal.reliability(c_test, y_test).ece
    after = cal.reliability(fitted.transform(c_test), y_test).ece
    assert raw > 0.1
    assert after < 0.03 < raw / 3


@pytest.mark.parametrize("kind", KINDS)
def test_calibrators_round_trip_through_json(kind: str) -> None:
    c, y = _stream(9, 2000, power=2.0)
    fitted: cal.Calibrator = (
        cal.BucketCalibrator(strategy="quantile")
        if kind == "buckets"
        else cal.calibrator_for(kind)()
    )
    fitted.fit(c, y)
    doc = json.loads(orjson.dumps(fitted.to_dict()))
    again = cal.calibrator_from_dict(doc)
    assert type(again) is type(fitted)
    grid = np.linspace(0.0, 1.0, 101)
    assert np.array_equal(again.transform(grid), fitted.transform(grid))


# --- the online calibrator -----------------------------------------------------------------


def test_online_without_decay_equals_the_bucket_calibrator() -> None:
    c, y = _stream(4, 3000, power=2.0)
    online = cal.OnlineCalibrator(n_buckets=10)
    for ci, yi in zip(c.tolist(), y.tolist(), strict=True):
        online.update(ci, yi == 1.0)
    batch = cal.BucketCalibrator(n_buckets=10).fit(c, y)
    grid = np.linspace(0.0, 1.0, 201)
    assert online.transform(grid) == pytest.approx(batch.transform(grid), abs=1e-12)
    assert online.ece() == pytest.approx(cal.reliability(c, y).ece, abs=1e-12)
    again = cal.calibrator_from_dict(json.loads(orjson.dumps(online.to_dict())))
    assert isinstance(again, cal.OnlineCalibrator)
    assert np.array_equal(again.transform(grid), online.transform(grid))
    assert again.n_updates == 3000


def test_online_half_life_halves_weight_and_bounds_the_counts() -> None:
    online = cal.OnlineCalibrator(n_buckets=2, half_life=10.0)
    online.update(0.9, True)
    for _ in range(10):
        online.update(0.1, False)
    # the first prediction is 10 updates old: weight 1/2
    assert online.n[1] == pytest.approx(0.5)
    for _ in range(2000):
        online.update(0.1, False)
    assert online.n.sum() < 1.0 / (1.0 - 0.5 ** (1 / 10))
    # a fresh calibrator gives the bucket midpoints (the prior alone)
    assert cal.OnlineCalibrator(n_buckets=2).transform([0.2, 0.8]) == pytest.approx([0.25, 0.75])
    assert cal.OnlineCalibrator().ece() == 0.0


def test_online_recovers_after_the_model_drifts() -> None:
    # calibrated for 5,000 predictions, then over-confident (truth c^2): with a half-life of
    # 500 updates the calibrator follows the new truth, without one it lags
    c1, y1 = _stream(1, 5000)
    c2, y2 = _stream(2, 3000, power=2.0)
    decayed, frozen = cal.OnlineCalibrator(half_life=500.0), cal.OnlineCalibrator()
    for ci, yi in zip(
        np.concatenate([c1, c2]).tolist(), np.concatenate([y1, y2]).tolist(), strict=True
    ):
        decayed.update(ci, yi == 1.0)
        frozen.update(ci, yi == 1.0)
    c_test, y_test = _stream(3, 20_000, power=2.0)
    ece_decayed = cal.reliability(decayed.transform(c_test), y_test).ece
    ece_frozen = cal.reliability(frozen.transform(c_test), y_test).ece
    assert ece_decayed < 0.04 < ece_frozen


# --- CLI --------------------------------------------------------------------------------


def _write_csv(path: Path, c: np.ndarray, y: np.ndarray, bad_at: int | None = None) -> Path:
    lines = ["confidence,outcome"]
    for i, (ci, yi) in enumerate(zip(c.tolist(), y.tolist(), strict=True)):
        if i == bad_at:
            lines.append("1.5,1")
        lines.append(f"{ci!r},{int(yi)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_cli_reports_bad_rows_and_prints_one_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c, y = _stream(8, 1000, power=2.0)
    # the bad row goes before data row 3: header is line 1, data rows 1-3 lines 2-4, bad line 5
    path = _write_csv(tmp_path / "p.csv", c, y, bad_at=3)
    path.write_text(path.read_text() + "0.4,maybe\n", encoding="utf-8")
    code = calibrate_cli.main(["--predictions", str(path), "--method", "isotonic"])
    out, err = capsys.readouterr()
    assert code == 0
    assert "line 5: confidence '1.5' is not in [0, 1]" in err
    assert "line 1003: outcome 'maybe' is not 0 or 1" in err
    assert out.count("\n") == 1
    doc = json.loads(out)
    rel = cal.reliability(c, y)
    assert doc["ece"] == pytest.approx(rel.ece)
    assert (doc["n"], doc["bad_rows"], doc["n_buckets"], doc["strategy"]) == (
        1000,
        2,
        10,
        "uniform",
    )
    assert {"mce", "brier", "buckets", "calibrated", "raw_holdout", "calibrator"} <= set(doc)
    assert len(doc["buckets"]) == 10 and set(doc["buckets"][0]) == {
        "lower", "upper", "n", "mean_confidence", "hit_rate", "gap",
    }  # fmt: skip
    # fitted on the first 700 rows in file order, scored on the last 300
    assert (doc["fit_rows"], doc["holdout_rows"]) == (700, 300)
    assert doc["raw_holdout"]["ece"] == pytest.approx(cal.reliability(c[700:], y[700:]).ece)
    fitted = cal.IsotonicCalibrator().fit(c[:700], y[:700])
    assert doc["calibrated"]["ece"] == pytest.approx(
        cal.reliability(fitted.transform(c[700:]), y[700:]).ece
    )
    assert doc["calibrated"]["ece"] < doc["raw_holdout"]["ece"]


def test_cli_quantile_without_method(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c, y = _stream(8, 500)
    path = _write_csv(tmp_path / "p.csv", c, y)
    assert (
        calibrate_cli.main(["--predictions", str(path), "--buckets", "5", "--strategy", "quantile"])
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["strategy"] == "quantile" and len(doc["buckets"]) == 5
    assert "calibrated" not in doc
    assert [b["n"] for b in doc["buckets"]] == [100] * 5


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "none.csv")
    assert calibrate_cli.main(["--predictions", missing]) == 1
    bad_header = tmp_path / "h.csv"
    bad_header.write_text("conf,hit\n0.5,1\n", encoding="utf-8")
    assert calibrate_cli.main(["--predictions", str(bad_header)]) == 1
    only_bad = tmp_path / "b.csv"
    only_bad.write_text("confidence,outcome\n2,1\n", encoding="utf-8")
    assert calibrate_cli.main(["--predictions", str(only_bad)]) == 1
    one = tmp_path / "one.csv"
    one.write_text("confidence,outcome\n0.5,1\n", encoding="utf-8")
    assert calibrate_cli.main(["--predictions", str(one), "--method", "platt"]) == 1
    assert calibrate_cli.main(["--predictions", str(one), "--buckets", "0"]) == 2
    assert calibrate_cli.main(["--predictions", str(one), "--strategy", "log"]) == 2
    assert calibrate_cli.main([]) == 2
    err = capsys.readouterr().err
    assert "no valid rows" in err and "header lacks" in err


def test_edgebus_calibrate_passes_through(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c, y = _stream(8, 200)
    path = _write_csv(tmp_path / "p.csv", c, y)
    assert cli.main(["calibrate", "--predictions", str(path), "--method", "platt"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["n"] == 200 and doc["method"] == "platt"
    assert "calibrate" in cli.PASSTHROUGH and "calibrate" in (cli.__doc__ or "").splitlines()[0]
