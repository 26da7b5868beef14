"""Schema of conf/telemetry.yml."""

from __future__ import annotations

from pydantic import Field

from shared.config import ComponentConfig


class TelemetryConfig(ComponentConfig):
    tick_to_fill_buckets_s: tuple[float, ...] = Field(
        default=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
    )
