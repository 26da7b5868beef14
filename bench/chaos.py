"""`make chaos`: crash, Redis restart, replica take-over and overload, on the real stack.

An AOF Redis and the six services as processes, ~1,000 ticks/s. Each scenario is a
phase that starts and ends drained (source stopped), so its invariants can be checked
hop by hop over exactly its entries (bench/chaos_check.py):
- kill -9 each service in turn and restart it; recovery = restart -> its consumer
  groups delivered and acknowledged the backlog that piled up while it was down
- kill -9 Redis and start a new one on the same port and data dir (AOF);
- a second model_router replica in the same group, frozen while it holds delivered
  entries, then killed: the first takes its pending work (XAUTOCLAIM);
- overload: ticks as fast as feature_bus can make them; lag shows in /metrics, stream
  lengths stay at MAXLEN, memory flat; then back to 1,000/s and catch-up is timed.

Prints kills survived, entries checked, lost, duplicates, recovery p50/max, and writes
bench/chaos_results.json. Exit 1 if anything was lost or doubled or a service crashed.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.chaos_check import HopReport, check_phase, last_ids
from bench.chaos_stack import ChaosStack
from services import SERVICE_NAMES

RESULTS = Path(__file__).resolve().parent / "chaos_results.json"
RATE_PER_S = 1_000.0


def say(line: str) -> None:
    print(line, flush=True)


class Chaos:
    def __init__(self, stack: ChaosStack, warm_s: float, steady_s: float) -> None:
        self.s = stack
        self.warm_s = warm_s
        self.steady_s = steady_s
        self.kills = 0
        self.recoveries: dict[str, float] = {}
        self.phases: dict[str, dict[str, Any]] = {}
        self.total = HopReport()

    # ---- phases ----------------------------------------------------------------------

    def phase(self, name: str, fault: Any) -> None:
        """Drained -> source on -> warm up -> fault -> steady -> source off -> drained."""
        s = self.s
        start = last_ids(s.r)
        if "feature_bus" not in s.procs or s.procs["feature_bus"].poll() is not None:
            s.spawn("feature_bus")
            s.wait(lambda: s.ready("feature_bus"), 30, "feature_bus ready")
        time.sleep(self.warm_s)
        info: dict[str, Any] = fault() or {}
        time.sleep(self.steady_s)
        s.term("feature_bus")
        drain_s = s.wait(s.drained, 300, f"{name}: pipeline drained")
        rep = check_phase(s.r, start)
        crashed = [k for k in s.dead() if k != "feature_bus" and not k.startswith("~")]
        self.phases[name] = {
            **info,
            "entries_checked": rep.checked,
            "lost": rep.lost,
            "duplicates": rep.duplicates,
            "drain_s": round(drain_s, 2),
            "crashed": crashed,
        }
        self.total.checked += rep.checked
        for k, v in rep.lost.items():
            self.total.lost[k] = self.total.lost.get(k, 0) + v
        for k, v in rep.duplicates.items():
            self.total.duplicates[k] = self.total.duplicates.get(k, 0) + v
        say(
            f"  {name:<24} entries {rep.checked:>7}  lost {rep.lost_total}  "
            f"duplicates {rep.duplicates_total}  "
            + "  ".join(f"{k}={v}" for k, v in info.items() if not isinstance(v, dict))
        )
        if crashed:
            raise SystemExit(f"{name}: services died: {crashed}; logs in {s.tmp}")

    def kill_and_restart(self, victim: str) -> dict[str, Any]:
        s = self.s
        s.kill(victim)
        self.kills += 1
        time.sleep(1.0)  # work piles up for the dead service
        t0 = time.monotonic()
        marks = s.marks(victim)  # what piled up while it was down
        s.spawn(victim)
        s.wait(lambda: s.ready(victim), 60, f"{victim} ready")
        if victim == "feature_bus":
            n = s.r.xlen("md.ticks")
            s.wait(lambda: s.r.xlen("md.ticks") > n, 30, "ticks flowing again")
        else:
            s.wait(lambda: s.caught_up(marks), 300, f"{victim} caught up with its backlog")
        recovery_s = time.monotonic() - t0
        self.recoveries[victim] = recovery_s
        return {"recovery_s": round(recovery_s, 2)}

    def redis_restart(self) -> dict[str, Any]:
        s = self.s
        acked_before = s.r.xlen("md.ticks")
        s.redis.kill()
        self.kills += 1
        time.sleep(0.5)
        # /health must say so while Redis is away
        codes = {n: s.health(n) for n in ("model_router", "execution")}
        honest = all(code == 503 and body.get("redis") == "down" for code, body in codes.values())
        time.sleep(1.0)
        t0 = time.monotonic()
        s.restart_redis(down_s=0.0)
        kept = s.r.xlen("md.ticks") >= acked_before  # AOF kept what was acknowledged
        marks = s.marks()
        s.wait(lambda: all(s.health(n)[0] == 200 for n in SERVICE_NAMES), 60, "all healthy")
        s.wait(lambda: s.caught_up(marks), 300, "caught up after the Redis restart")
        recovery_s = time.monotonic() - t0
        self.recoveries["redis"] = recovery_s
        return {
            "recovery_s": round(recovery_s, 2),
            "health_showed_outage": honest,
            "aof_kept_acknowledged": kept,
        }

    def replica_takeover(self) -> dict[str, Any]:
        s = self.s
        consumer = "model_router@chaos-replica"
        replica = s.spawn(
            "model_router",
            key="~replica",
            EDGEBUS_CONSUMER=consumer,
            EDGEBUS_HTTP_PORT=str(s.free_port()),
        )
        s.wait(
            lambda: (
                s.consumer_pending("features", "model_router", consumer) > 0
                or _consumer_exists(s, consumer)
            ),
            30,
            "replica consuming",
        )
        # Frozen while blocked in XREADGROUP, it still gets entries delivered: they sit
        # in its pending list until someone claims them.
        for _ in range(20):  # frozen outside XREADGROUP it gets nothing: thaw and retry
            replica.send_signal(signal.SIGSTOP)
            try:
                s.wait(lambda: s.consumer_pending("features", "model_router", consumer) > 0, 2, "")
                break
            except TimeoutError:
                replica.send_signal(signal.SIGCONT)
                time.sleep(0.3)
        held = s.consumer_pending("features", "model_router", consumer)
        replica.kill()
        replica.wait()
        self.kills += 1
        t0 = time.monotonic()
        s.wait(
            lambda: s.consumer_pending("features", "model_router", consumer) == 0,
            60,
            "pending taken over",
        )
        takeover_s = time.monotonic() - t0
        s.r.xgroup_delconsumer("features", "model_router", consumer)
        return {"held_pending": held, "takeover_s": round(takeover_s, 2)}

    def overload(self, burst_ticks: int) -> dict[str, Any]:
        s = self.s
        maxlen = 100_000
        peak: dict[str, float] = {"lag": 0, "metric_lag": 0, "xlen": 0, "redis_mb": 0, "rss_mb": 0}
        start_len = s.r.xlen("md.ticks")
        s.set_config("feature_bus", ticks_per_s=0.0)  # as fast as it can
        t0 = time.monotonic()
        while time.monotonic() - t0 < 30:
            groups = s.groups()
            peak["lag"] = max(peak["lag"], max(lag for lag, _ in groups.values()))
            lag_metric = s.metric("model_router", "edgebus_consumer_lag_entries", stream="features")
            peak["metric_lag"] = max(peak["metric_lag"], lag_metric or 0)
            peak["xlen"] = max(peak["xlen"], max(s.r.xlen(k) for k in ("md.ticks", "signals")))
            peak["redis_mb"] = max(peak["redis_mb"], s.r.info("memory")["used_memory"] / 2**20)
            peak["rss_mb"] = max(peak["rss_mb"], max(s.rss_mb().values()))
            if s.r.xlen("md.ticks") - start_len >= burst_ticks:
                break
            time.sleep(0.25)
        burst_s = time.monotonic() - t0
        made = s.r.xlen("md.ticks") - start_len
        s.set_config("feature_bus", ticks_per_s=RATE_PER_S)
        marks = s.marks()
        catch_up_s = s.wait(lambda: s.caught_up(marks), 300, "caught up after the overload")
        return {
            "burst_s": round(burst_s, 1),
            "burst_ticks_per_s": round(made / burst_s),
            "peak_lag_entries": int(peak["lag"]),
            "peak_lag_metric": int(peak["metric_lag"]),
            "peak_stream_len": int(peak["xlen"]),
            "maxlen": maxlen,
            "peak_redis_mb": round(peak["redis_mb"], 1),
            "peak_rss_mb": round(peak["rss_mb"], 1),
            "catch_up_s": round(catch_up_s, 2),
        }


def _consumer_exists(s: ChaosStack, consumer: str) -> bool:
    return any(c["name"] == consumer for c in s.r.xinfo_consumers("features", "model_router"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter phases (a smoke run)")
    parser.add_argument("--burst-ticks", type=int, default=40_000)
    args = parser.parse_args(argv)
    warm_s, steady_s = (1.0, 1.0) if args.quick else (3.0, 3.0)
    stack = ChaosStack()
    say(f"[chaos] redis on {stack.redis.port} (AOF, data in {stack.tmp}); starting six services")
    try:
        stack.set_config("feature_bus", ticks_per_s=RATE_PER_S)
        stack.start_all()
        stack.term("feature_bus")  # phases start and stop the source themselves
        stack.wait(stack.drained, 60, "initial drain")
        chaos = Chaos(stack, warm_s, steady_s)
        for victim in SERVICE_NAMES:
            chaos.phase(f"kill -9 {victim}", lambda v=victim: chaos.kill_and_restart(v))
        chaos.phase("redis kill -9 + restart", chaos.redis_restart)
        chaos.phase("replica take-over", chaos.replica_takeover)
        chaos.phase("overload", lambda: chaos.overload(args.burst_ticks))
    finally:
        stack.close()
    rec = sorted(chaos.recoveries.values())
    result = {
        "ticks_per_s": RATE_PER_S,
        "kills_survived": chaos.kills,
        "entries_checked": chaos.total.checked,
        "lost": chaos.total.lost_total,
        "duplicates": chaos.total.duplicates_total,
        "recovery_s_p50": round(statistics.median(rec), 2),
        "recovery_s_max": round(rec[-1], 2),
        "recovery_s": {k: round(v, 2) for k, v in chaos.recoveries.items()},
        "lost_by_hop": chaos.total.lost,
        "duplicates_by_kind": chaos.total.duplicates,
        "phases": chaos.phases,
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    say(
        f"[chaos] kills survived {result['kills_survived']} | entries checked "
        f"{result['entries_checked']} | lost {result['lost']} | duplicates "
        f"{result['duplicates']} | recovery s p50 {result['recovery_s_p50']} "
        f"max {result['recovery_s_max']}"
    )
    say(f"[chaos] wrote {RESULTS}")
    return 0 if result["lost"] == 0 and result["duplicates"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
