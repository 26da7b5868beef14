"""Schema of conf/telemetry.yml."""

from __future__ import annotations

from pathlib import PurePosixPath

from pydantic import Field, field_validator

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
    reports_dir: str = Field(
        default=".run/reports",
        description="the daily PnL report files (pnl-YYYY-MM-DD.json), under EDGEBUS_HOME; '' = off",
    )

    @field_validator("reports_dir")
    @classmethod
    def _confined(cls, value: str) -> str:
        path = PurePosixPath(value)
        if path.is_absolute() or ".." in path.parts:
            raise ValueError("must be a relative path inside EDGEBUS_HOME, without '..'")
        return value
