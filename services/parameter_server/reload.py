"""A ``param.reload`` request: parse it, read the file it names, validate it.

``redis-cli PUBLISH param.reload '{"component": "risk_harmoniser", "config_path":
"conf/risk_params.yml"}'``. Every way this can go wrong raises ``ConfigError`` with a
reason a person can act on: the message is not a JSON object, the component is
unknown, the path is outside ``conf/`` (``..``, an absolute path, or a symlink out),
the file is missing, the YAML is bad, or the content breaks the component's schema
(the reason names the key and the rule). No I/O besides reading the file.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from shared.config import COMPONENTS, ComponentConfig, ConfigError, load_file


@dataclass(frozen=True)
class ReloadRequest:
    component: str
    config_path: str


def parse_request(raw: str | bytes) -> ReloadRequest:
    """The request in a ``param.reload`` message; ``config_path`` defaults to the
    component's own file under ``conf/``."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(
            f'message is not JSON ({exc}); send {{"component": ..., "config_path": ...}}'
        ) from None
    if not isinstance(doc, dict):
        raise ConfigError(
            f"message must be a JSON object with component and config_path, "
            f"got {type(doc).__name__}"
        )
    unknown = sorted(set(doc) - {"component", "config_path"})
    if unknown:
        raise ConfigError(f"message: unknown key(s) {', '.join(unknown)}")
    component = doc.get("component")
    known = ", ".join(sorted(COMPONENTS))
    if component is None:
        raise ConfigError(f"component: missing (one of: {known})")
    if not isinstance(component, str) or component not in COMPONENTS:
        raise ConfigError(f"component {component!r}: unknown (known: {known})")
    config_path = doc.get("config_path", COMPONENTS[component].path)
    if not isinstance(config_path, str):
        raise ConfigError(f"config_path: must be a string, got {type(config_path).__name__}")
    return ReloadRequest(component, config_path)


def read_request(req: ReloadRequest) -> ComponentConfig:
    """The validated config the request names (the file must be inside ``conf/``)."""
    return load_file(req.component, req.config_path)
