"""Hostile configs and control messages: only ConfigError (configs) or ValueError
(trading.control) may come out, each with a message a person can act on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.config import (
    COMPONENTS,
    ConfigError,
    conf_dir,
    read_yaml,
    resolve_conf_path,
    validate,
)
from shared.control import ControlCommand, parse_command

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(["*", "1m", "book_pressure", "ma_momentum", "BTC-USD", "synthetic", "crypto"]),
)
# What yaml.safe_load can give: scalars, lists and string-keyed (or scalar-keyed) maps.
yaml_like = st.recursive(
    scalar,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=15), st.integers(), st.booleans()), children),
    ),
    max_leaves=25,
)


def shipped(component: str) -> dict[str, Any]:
    return read_yaml(conf_dir() / Path(COMPONENTS[component].path).name)


def known_keys() -> list[str]:
    keys: set[str] = set()
    for component in COMPONENTS:

        def walk(doc: Any) -> None:
            if isinstance(doc, dict):
                for k, v in doc.items():
                    keys.add(str(k))
                    walk(v)
            elif isinstance(doc, list):
                for v in doc:
                    walk(v)

        walk(shipped(component))
    return sorted(keys | {"bus", "batch_size", "maxlen", "block_ms", "claim_idle_ms"})


@st.composite
def mutated_config(draw: st.DrawFn) -> tuple[str, Any]:
    """A shipped config with values swapped at random paths, keys dropped or added."""
    component = draw(st.sampled_from(sorted(COMPONENTS)))
    doc: Any = shipped(component)

    def mutate(node: Any, depth: int) -> Any:
        if depth > 4 or draw(st.integers(0, 5)) == 0:
            return draw(yaml_like)
        if isinstance(node, dict) and node:
            node = dict(node)
            key = draw(st.sampled_from(sorted(node, key=str)))
            choice = draw(st.integers(0, 2))
            if choice == 0:
                node.pop(key)
            elif choice == 1:
                node[key] = mutate(node[key], depth + 1)
            else:
                node[draw(st.sampled_from(known_keys()))] = draw(yaml_like)
            return node
        if isinstance(node, list) and node:
            node = list(node)
            i = draw(st.integers(0, len(node) - 1))
            node[i] = mutate(node[i], depth + 1)
            return node
        return draw(yaml_like)

    for _ in range(draw(st.integers(1, 3))):
        doc = mutate(doc, 0)
    return component, doc


def check(component: str, doc: Any) -> None:
    try:
        cfg = validate(component, doc)
    except ConfigError as exc:
        assert str(exc).startswith(f"{component}: "), exc
        return
    # Accepted: it must survive the round trip the parameter server makes through Redis.
    assert validate(component, cfg.model_dump(mode="json")) == cfg


@FUZZ
@given(st.sampled_from(sorted(COMPONENTS)), yaml_like)
def test_arbitrary_documents_validate_or_raise_config_error(component: str, doc: Any) -> None:
    check(component, doc)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_config())
def test_mutated_shipped_configs_validate_or_raise_config_error(case: tuple[str, Any]) -> None:
    check(*case)


@FUZZ
@given(st.text(max_size=300))
def test_arbitrary_yaml_text_reads_or_raises_config_error(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    path = tmp_path_factory.mktemp("yaml") / "x.yml"
    path.write_text(text)
    try:
        doc = read_yaml(path)
    except ConfigError as exc:
        assert "x.yml" in str(exc)
        return
    assert isinstance(doc, dict)


@FUZZ
@given(
    st.one_of(
        st.text(max_size=60),
        st.sampled_from(
            ["conf/\x00x.yml", "\x00", "conf/" + "a" * 5000, "conf/../conf/x", "~/x", "//", "."]
        ),
    )
)
def test_arbitrary_config_paths_resolve_inside_conf_or_raise_config_error(path: str) -> None:
    try:
        resolved = resolve_conf_path(path)
    except ConfigError as exc:
        assert "config_path" in str(exc)
        return
    assert resolved.is_relative_to(conf_dir().resolve())


@FUZZ
@given(
    st.one_of(
        st.text(max_size=80),
        st.binary(max_size=80),
        yaml_like.map(json.dumps),
        st.fixed_dictionaries(
            {"action": st.one_of(st.sampled_from(["halt", "resume", "flatten", "reduce"]), scalar)},
            optional={"reason": scalar, "source": scalar, "extra": scalar},
        ).map(json.dumps),
    )
)
def test_trading_control_messages_parse_or_raise_value_error(raw: str | bytes) -> None:
    try:
        cmd = parse_command(raw)
    except ValueError as exc:
        assert str(exc)
        return
    assert isinstance(cmd, ControlCommand)
    assert cmd.action in ("halt", "resume", "flatten", "reduce")


def test_a_validator_tripping_on_an_odd_type_is_a_config_error() -> None:
    """Found by the fuzz above: risk_harmoniser's preset validator raised a bare
    TypeError (unhashable list) out of validate()."""
    try:
        validate("risk_harmoniser", {"preset": []})
    except ConfigError as exc:
        assert str(exc).startswith("risk_harmoniser: ")
    else:
        raise AssertionError("a list as preset was accepted")
