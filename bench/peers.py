"""`make bench-peers`: NautilusTrader's BacktestEngine and our backtest, back to back, on the
same number of synthetic ticks; adds the peer keys to bench/results.json (keeping the rest).

    python -m bench.peers [--ticks 300000] [--seed 7] [--out .run/bench-peers]

The peer is `../shared/peers/nautilus.sh` (its own venv, made on first use; the last line of
its stdout is one JSON object). Ours is `edgebus backtest --synthetic --conf-dir bench/conf` (the bench's workload), whose report.json
holds a `run` section: ticks, ticks_per_s, orders, orders_per_1k_ticks, wall_s.
Keys written: `peer_nautilus_ticks_per_s`, `peer_nautilus_orders_per_1k_ticks`,
`inprocess_vs_nautilus_ratio` (ours / peer, ticks per second), and `peers_run` (both sides'
figures as measured, and when).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.json"
PEER_SCRIPT = ROOT.parent / "shared" / "peers" / "nautilus.sh"
# The bench's workload (docs/performance.md): as `make bench`'s inprocess_ticks_per_s, and
# with about as many orders per 1,000 ticks as the peer's strategy.
BENCH_CONF = ROOT / "bench" / "conf"
PEER_TIMEOUT_S = 1_800  # the first run installs nautilus_trader into its own venv
OURS_TIMEOUT_S = 1_800


class PeerBenchError(RuntimeError):
    """A side of the comparison did not give its figures; the message says which and why."""


def last_json_line(stdout: str) -> dict[str, Any]:
    """The peer's result: the last non-empty line of its stdout, one JSON object."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise PeerBenchError("the peer printed nothing on stdout")
    try:
        doc = json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        raise PeerBenchError(
            f"the peer's last stdout line is not JSON: {lines[-1][:200]!r}"
        ) from exc
    if not isinstance(doc, dict):
        raise PeerBenchError(
            f"the peer's last stdout line is not a JSON object: {lines[-1][:200]!r}"
        )
    return doc


def run_peer(script: Path, ticks: int) -> dict[str, Any]:
    if not script.is_file():
        raise PeerBenchError(f"no peer script at {script} (set --peer-script)")
    cmd = ["bash", str(script), "--ticks", str(ticks), "--reps", "1", "--modes", "orders"]
    print(f"peer: {' '.join(cmd)}", flush=True)
    out = subprocess.run(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, timeout=PEER_TIMEOUT_S, check=False
    )
    if out.returncode != 0:
        raise PeerBenchError(f"the peer exited with {out.returncode}; its stderr is above")
    return last_json_line(out.stdout)


def require_our_backtest(module: str = "services.backtest.cli") -> None:
    """Fail before the peer's minute, not after it, when `edgebus backtest` is not there."""
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        raise PeerBenchError(f"`edgebus backtest` is not available yet ({module} is missing)")


def run_ours(ticks: int, seed: int, out_dir: Path, conf_dir: Path = BENCH_CONF) -> dict[str, Any]:
    cmd = [
        sys.executable, "-m", "shared.cli", "backtest", "--synthetic",
        "--ticks", str(ticks), "--seed", str(seed), "--out", str(out_dir),
        "--conf-dir", str(conf_dir),
    ]  # fmt: skip
    print(f"ours: edgebus {' '.join(cmd[3:])}", flush=True)
    report = out_dir / "report.json"
    report.unlink(missing_ok=True)  # a report from an earlier run must not pass for this one
    code = subprocess.run(cmd, cwd=ROOT, timeout=OURS_TIMEOUT_S, check=False).returncode
    if code != 0:
        raise PeerBenchError(f"`edgebus backtest` exited with {code} (its message is above)")
    try:
        doc = json.loads(report.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PeerBenchError(f"`edgebus backtest` wrote no readable {report}: {exc}") from exc
    run = doc.get("run") if isinstance(doc, dict) else None
    if not isinstance(run, dict) or not run.get("ticks_per_s"):
        raise PeerBenchError(
            f"{report} has no `run` section with ticks_per_s "
            '(expected {"ticks": N, "ticks_per_s": x, "orders": n, "orders_per_1k_ticks": y, '
            '"wall_s": z})'
        )
    return run


def comparison(peer: dict[str, Any], ours: dict[str, Any]) -> dict[str, Any]:
    """The results.json keys from both sides' figures."""
    peer_rate = float(peer.get("ticks_per_s_with_orders") or 0.0)
    if peer_rate <= 0:
        raise PeerBenchError(f"the peer reported no ticks_per_s_with_orders: {peer}")
    ours_rate = float(ours["ticks_per_s"])
    keys: dict[str, Any] = {"peer_nautilus_ticks_per_s": round(peer_rate, 1)}
    if peer.get("orders") is not None and peer.get("ticks"):
        keys["peer_nautilus_orders_per_1k_ticks"] = round(
            1_000 * float(peer["orders"]) / float(peer["ticks"]), 2
        )
    keys["inprocess_vs_nautilus_ratio"] = round(ours_rate / peer_rate, 3)
    keys["peers_run"] = {
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "nautilus": peer,
        "ours": ours,
    }
    return keys


def merge_results(new: dict[str, Any], path: Path = RESULTS) -> dict[str, Any]:
    """results.json updated with ``new``, every other key kept; written atomically."""
    try:
        results = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        results = {}
    if not isinstance(results, dict):
        results = {}
    results.update(new)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, path)
    return results


def print_table(peer: dict[str, Any], ours: dict[str, Any], keys: dict[str, Any]) -> None:
    peer_ticks = peer.get("ticks") or 0
    peer_per_1k = keys.get("peer_nautilus_orders_per_1k_ticks", "?")
    print()
    print(f"{'':<24}{'ticks':>10}{'ticks/s':>12}{'orders/1k ticks':>18}")
    print(
        f"{'nautilus ' + str(peer.get('nautilus_version', '')):<24}{peer_ticks:>10,}"
        f"{keys['peer_nautilus_ticks_per_s']:>12,.0f}{peer_per_1k:>18}"
    )
    print(
        f"{'edgebus backtest':<24}{int(ours.get('ticks', 0)):>10,}"
        f"{float(ours['ticks_per_s']):>12,.0f}{ours.get('orders_per_1k_ticks', '?'):>18}"
    )
    print(f"\ninprocess_vs_nautilus_ratio {keys['inprocess_vs_nautilus_ratio']:g} (goal >= 1.5)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--ticks", type=int, default=300_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=ROOT / ".run" / "bench-peers")
    ap.add_argument("--peer-script", type=Path, default=PEER_SCRIPT)
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--conf-dir", type=Path, default=BENCH_CONF, help="our backtest's configs")
    args = ap.parse_args(argv)
    try:
        require_our_backtest()
        peer = run_peer(args.peer_script, args.ticks)
        ours = run_ours(args.ticks, args.seed, args.out, args.conf_dir)
        keys = comparison(peer, ours)
    except (PeerBenchError, subprocess.TimeoutExpired) as exc:
        print(f"bench-peers: {exc}", file=sys.stderr)
        return 1
    merge_results(keys, args.results)
    print_table(peer, ours, keys)
    print(f"written to {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
