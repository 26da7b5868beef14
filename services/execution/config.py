"""Schema of conf/execution.yml."""

from __future__ import annotations

from pydantic import Field

from shared.config import ComponentConfig


class ExecutionConfig(ComponentConfig):
    venue: str = "paper"
    taker_fee_bps: float = Field(default=2.0, ge=-50, le=100)
    maker_fee_bps: float = Field(default=-0.5, ge=-50, le=100, description="negative = rebate")
    max_quote_age_ms: float = Field(default=5_000.0, gt=0)
