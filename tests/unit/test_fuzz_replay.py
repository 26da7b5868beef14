"""Hostile replay files: every row becomes a quote or a RowError (reported with its line
number by the replay); no other exception may stop a replay half-way."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.feature_bus.replay_rows import RowError, read_rows, row_to_quote
from shared.messages import RawQuote

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

cell = st.one_of(
    st.none(),
    st.text(max_size=20),
    st.sampled_from(
        [
            "",
            "nan",
            "inf",
            "-inf",
            "1e308",
            "-1",
            "0",
            "5e-324",
            "9" * 400,
            "2024-01-01T00:00:00Z",
            "2024-13-45T99:99:99",
            "1700000000000000000",
            "-1700000000000000000",
            "1" + "0" * 30,
            "0x10",
            "1_000",
            "BTC-USD",
            "x" * 100,
        ]
    ),
    st.floats().map(repr),
    st.integers().map(str),
)
QUOTE_KEYS = ("ts", "symbol", "bid", "ask", "bid_size", "ask_size")
BAR_KEYS = ("ts", "symbol", "open", "high", "low", "close", "volume")


@FUZZ
@given(
    kind=st.sampled_from(["quotes", "bars"]),
    row=st.fixed_dictionaries(
        {},
        optional={k: cell for k in {*QUOTE_KEYS, *BAR_KEYS}},
    ),
    line=st.integers(1, 10**6),
)
def test_a_row_becomes_a_quote_or_a_row_error(kind: str, row: dict[str, str], line: int) -> None:
    try:
        quote = row_to_quote(row, kind, 2.0, line, "fuzz")  # type: ignore[arg-type]
    except RowError as exc:
        assert str(exc)
        return
    assert isinstance(quote, RawQuote) and quote.line == line
    assert 0 < quote.bid < quote.ask


@FUZZ
@given(body=st.binary(max_size=400))
def test_a_hostile_csv_file_is_read_row_by_row_or_refused_with_a_reason(
    tmp_path_factory: pytest.TempPathFactory, body: bytes
) -> None:
    path = tmp_path_factory.mktemp("replay") / "f.csv"
    path.write_bytes(b"ts,symbol,bid,ask,bid_size,ask_size\n" + body)
    kind, rows = read_rows(path)
    for line, row in rows:
        with contextlib.suppress(RowError):
            row_to_quote(row, kind, 2.0, line, "fuzz")


def test_a_file_with_a_bad_header_is_a_row_error(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text("when,what\n1,2\n")
    with pytest.raises(RowError, match="columns"):
        read_rows(path)


def test_a_non_utf8_byte_costs_its_row_not_the_replay(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(
        b"ts,symbol,bid,ask,bid_size,ask_size\n"
        b"1700000000000000000,BTC-USD,100,100.1,1,1\n"
        b"1700000000000000001,BTC-USD,1\x800,100.1,1,1\n"
        b"1700000000000000002,BTC-USD,100,100.1,1,1\n"
    )
    kind, rows = read_rows(path)
    ok, bad = [], []
    for line, row in rows:
        try:
            ok.append(row_to_quote(row, kind, 2.0, line, "fuzz").line)
        except RowError:
            bad.append(line)
    assert ok == [2, 4] and bad == [3]
