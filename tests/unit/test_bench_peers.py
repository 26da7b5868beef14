"""`make bench-peers` (bench/peers.py) without running either side: the peer's JSON line,
the keys it writes, and a results.json merge that keeps every other key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import peers

PEER = {
    "nautilus_version": "1.221.0",
    "ticks": 300_000,
    "ticks_per_s_with_orders": 28_750.5,
    "orders": 4_334,
    "fills": 4_428,
}
OURS = {
    "ticks": 300_000,
    "ticks_per_s": 43_125.75,
    "orders": 4_200,
    "orders_per_1k_ticks": 14.0,
    "wall_s": 6.96,
}


def test_the_peer_result_is_its_last_stdout_line() -> None:
    out = "installing...\n{not this}\n" + json.dumps(PEER) + "\n\n"
    assert peers.last_json_line(out) == PEER
    for bad in ("", "done\n", "[1, 2]\n"):
        with pytest.raises(peers.PeerBenchError):
            peers.last_json_line(bad)


def test_the_keys_and_the_ratio() -> None:
    keys = peers.comparison(PEER, OURS)
    assert keys["peer_nautilus_ticks_per_s"] == 28_750.5
    assert keys["peer_nautilus_orders_per_1k_ticks"] == 14.45  # 4,334 / 300,000 * 1,000
    assert keys["inprocess_vs_nautilus_ratio"] == 1.5  # 43,125.75 / 28,750.5
    assert keys["peers_run"]["nautilus"] == PEER and keys["peers_run"]["ours"] == OURS
    without_orders = {k: v for k, v in PEER.items() if k != "orders"}
    assert "peer_nautilus_orders_per_1k_ticks" not in peers.comparison(without_orders, OURS)
    with pytest.raises(peers.PeerBenchError):
        peers.comparison({"ticks": 1}, OURS)


def test_merge_keeps_the_other_keys(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"e2e_ticks_per_s": 1.0, "peer_nautilus_ticks_per_s": 1.0}))
    merged = peers.merge_results({"peer_nautilus_ticks_per_s": 2.0}, path)
    assert merged == json.loads(path.read_text())
    assert merged == {"e2e_ticks_per_s": 1.0, "peer_nautilus_ticks_per_s": 2.0}
    assert peers.merge_results({"a": 1}, tmp_path / "new.json") == {"a": 1}


def test_a_peer_script_that_fails_or_is_missing_is_named(tmp_path: Path) -> None:
    with pytest.raises(peers.PeerBenchError, match="no peer script"):
        peers.run_peer(tmp_path / "missing.sh", 10)
    script = tmp_path / "peer.sh"
    script.write_text(f"echo warming up\necho '{json.dumps(PEER)}'\n")
    assert peers.run_peer(script, 10) == PEER
    script.write_text("exit 4\n")
    with pytest.raises(peers.PeerBenchError, match="exited with 4"):
        peers.run_peer(script, 10)


def test_a_missing_backtest_fails_before_the_peer_runs() -> None:
    with pytest.raises(peers.PeerBenchError, match="not available yet"):
        peers.require_our_backtest("services.no_such_package.cli")
    peers.require_our_backtest("bench.peers")
