"""Schema of conf/model_router_rules.yml: which models speak for which instruments."""

from __future__ import annotations

import fnmatch

from pydantic import Field, field_validator

from shared.config import ComponentConfig, Frozen


class ModelWeight(Frozen):
    id: str = Field(min_length=1)
    weight: float = Field(default=1.0, ge=0)
    shadow: bool = False


class RoutingRule(Frozen):
    """Instrument pattern (exact or glob) and horizon -> ordered models with weights."""

    pattern: str = Field(min_length=1)
    horizon: str = Field(default="1m", pattern=r"^\d+(ms|s|m|h|d)$")
    models: tuple[ModelWeight, ...] = Field(min_length=1)

    @field_validator("models")
    @classmethod
    def _known_models(cls, models: tuple[ModelWeight, ...]) -> tuple[ModelWeight, ...]:
        from services.model_router.models import MODELS

        for mw in models:
            if mw.id not in MODELS:
                raise ValueError(f"unknown model {mw.id!r} (known: {', '.join(sorted(MODELS))})")
        return models

    def matches(self, symbol: str) -> bool:
        return fnmatch.fnmatchcase(symbol, self.pattern)


class RouterRules(ComponentConfig):
    rules: tuple[RoutingRule, ...] = Field(min_length=1)
