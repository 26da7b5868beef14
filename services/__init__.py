"""The six services. Each package holds its pure core modules, its config schema
(``config.py``) and its wiring to the bus (``service.py``)."""

from __future__ import annotations

import importlib

from shared.service import Service

SERVICE_NAMES: tuple[str, ...] = (
    "parameter_server",
    "feature_bus",
    "model_router",
    "risk_harmoniser",
    "execution",
    "telemetry",
)


def service_class(name: str) -> type[Service]:
    if name not in SERVICE_NAMES:
        raise KeyError(f"unknown service {name!r}; known: {', '.join(SERVICE_NAMES)}")
    module = importlib.import_module(f"services.{name}.service")
    cls = module.SERVICE
    assert issubclass(cls, Service)
    return cls
