"""Schema of conf/telemetry.yml."""

from __future__ import annotations

from pydantic import Field

from shared.config import ComponentConfig


class TelemetryConfig(ComponentConfig):
    equity_usd: float = Field(
        default=1_000_000.0, gt=0, description="equity for drawdown_pct (as risk_params)"
    )
    poll_interval_s: float = Field(
        default=1.0, gt=0, le=60, description="stream stats and time-series write period"
    )
    timeseries_retention_ms: int = Field(
        default=86_400_000, ge=0, description="RedisTimeSeries retention; 0 = forever"
    )
    context_cap: int = Field(
        default=50_000, ge=100, description="orders and traces remembered for events"
    )
