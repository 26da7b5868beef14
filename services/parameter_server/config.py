"""Schema of conf/parameter_server.yml."""

from __future__ import annotations

from shared.config import ComponentConfig


class ParameterServerConfig(ComponentConfig):
    seed_from_files: bool = True  # store conf/*.yml as version 1 where Redis has none
