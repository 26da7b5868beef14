"""The codec engine of the bus: the ``Message`` base class and the only encode/decode
path (flat Redis fields, one per attribute; nested values as JSON; floats as their
shortest repr), the trusted fast constructor and the checks derived from the models.
The vocabulary (one model per stream) is ``shared/messages.py``."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from functools import partial
from operator import itemgetter
from typing import Any, ClassVar, Literal, Self, get_args, get_origin

import annotated_types
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

SCHEMA_VERSION = 1

# Nanosecond times fit in a signed 64-bit integer (until 2262): a larger one is hostile
# input, and would overflow the float maths of latency metrics.
MAX_NS = 2**63 - 1


class DecodeError(ValueError):
    """An entry that cannot become its stream's message; the text is the DLQ reason."""


def now_ns() -> int:
    return time.time_ns()


class Message(BaseModel):
    """Base of every stream entry. Subclasses set ``STREAM``."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, validate_assignment=False)

    STREAM: ClassVar[str] = ""
    # Fields whose wire form is a JSON string (dicts and lists), computed per class.
    _json_fields: ClassVar[frozenset[str]] = frozenset()
    # Field name -> default (None when required), in field order; per class.
    _defaults: ClassVar[dict[str, Any]] = {}
    _factories: ClassVar[dict[str, Callable[[], Any]]] = {}
    _plan: ClassVar[_FlatPlan | None] = None

    v: int = SCHEMA_VERSION
    trace_ts_ns: int = Field(default=0, ge=0, le=MAX_NS)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        json_fields = set()
        for name, info in cls.model_fields.items():
            ann = info.annotation
            origin = get_origin(ann)
            candidates = (
                get_args(ann) if origin is not None and origin not in (dict, list) else (ann,)
            )
            for c in candidates:
                if c in (dict, list) or get_origin(c) in (dict, list):
                    json_fields.add(name)
        cls._json_fields = frozenset(json_fields)
        # For ``trusted``: every field in order with its default (a placeholder when
        # required: the caller gives it), and the fields whose default is made per message.
        defaults: dict[str, Any] = {}
        factories: dict[str, Callable[[], Any]] = {}
        for name, info in cls.model_fields.items():
            defaults[name] = None
            if info.default_factory is not None:
                factories[name] = info.default_factory  # type: ignore[assignment]
            elif not info.is_required():
                default = info.default
                defaults[name] = default
                if type(default) not in _IMMUTABLE:  # as pydantic: a copy per message
                    factories[name] = partial(copy.deepcopy, default)
        cls._defaults = defaults
        cls._factories = factories
        cls._plan = _FlatPlan.of(cls.model_fields)

    def to_fields(self) -> dict[str, str | int | float]:
        """Flat Redis fields: None is omitted, bools are 0/1, dicts and lists are JSON.

        Floats come out as ``repr(value)``: the very text the Redis client writes for a
        float, so the wire is unchanged, but made for all of a message's floats in one
        orjson call (repr costs about 0.3 us per float, and so does hiredis's packing
        of a float, against 0.08 us for a str).
        """
        plan = self._plan
        if plan is not None:
            out = plan.encode(self.__dict__)
            if out is not None:
                return out
        out = {}
        float_keys: list[str] = []
        float_values: list[float] = []
        for key, val in self.__dict__.items():
            kind = val.__class__
            if kind is float:
                float_keys.append(key)
                float_values.append(val)
                out[key] = val  # keeps the field order; replaced by its text below
            elif kind is str or kind is int:
                out[key] = val
            elif val is None:
                continue
            elif isinstance(val, bool):
                out[key] = 1 if val else 0
            elif isinstance(val, (dict, list, tuple)):
                out[key] = orjson.dumps(val).decode()
            else:
                out[key] = val
        if float_values:
            out.update(zip(float_keys, float_reprs(float_values), strict=True))
        return out

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> Self:
        """Decode an entry read from Redis; raise DecodeError with a readable reason."""
        data: dict[str, Any]
        if cls._json_fields:
            data = dict(fields)
            for key in cls._json_fields:
                raw = data.get(key)
                if isinstance(raw, (str, bytes)):
                    try:
                        data[key] = orjson.loads(raw)
                    except orjson.JSONDecodeError as exc:
                        raise DecodeError(f"field {key!r}: not JSON ({exc})") from None
        else:
            # Validation never changes its input: no copy of a plain dict.
            data = fields if type(fields) is dict else dict(fields)
        try:
            # What model_validate does, without its Python-level wrapper.
            return cls.__pydantic_validator__.validate_python(data)  # type: ignore[no-any-return]
        except ValidationError as exc:
            raise DecodeError(_validation_reason(exc)) from None

    @classmethod
    def checked(cls, values: dict[str, Any]) -> Self:
        """``cls(**values)``, validated the same way, without the constructor's Python
        wrapper: for values this process computed but does not vouch for (raises
        pydantic's ValidationError)."""
        return cls.__pydantic_validator__.validate_python(values)  # type: ignore[no-any-return]

    @classmethod
    def int_bounds(cls, name: str) -> tuple[int, int]:
        """(lowest, highest) value the int field ``name`` accepts, inclusive, from its
        declared constraints: fast paths check these instead of copying the numbers."""
        lo, hi = -MAX_NS - 1, MAX_NS
        for c in cls.model_fields[name].metadata:
            if isinstance(c, annotated_types.Gt):
                lo = max(lo, _as_int(c.gt) + 1)
            elif isinstance(c, annotated_types.Ge):
                lo = max(lo, _as_int(c.ge))
            elif isinstance(c, annotated_types.Lt):
                hi = min(hi, _as_int(c.lt) - 1)
            elif isinstance(c, annotated_types.Le):
                hi = min(hi, _as_int(c.le))
        return lo, hi

    @classmethod
    def length_bounds(cls, name: str) -> tuple[int, int | None]:
        """(min_length, max_length or None) of the str field ``name``."""
        lo, hi = 0, None
        for c in cls.model_fields[name].metadata:
            if isinstance(c, annotated_types.MinLen):
                lo = c.min_length
            elif isinstance(c, annotated_types.MaxLen):
                hi = c.max_length
        return lo, hi

    @classmethod
    def trusted(cls, values: dict[str, Any]) -> Self:
        """A message from values this process computed and already checked, without
        validation (about 3x cheaper than the constructor).

        The caller guarantees what validation would: every required field is given,
        each value has its field's exact type (float for float fields, never int) and
        meets its constraints. Then the result equals ``cls(**values)``, field order and
        value types included (tests check it against the constructor). Never use it for
        input from outside the process: that goes through ``from_fields``.

        Given every field (``v`` included) in the model's order, ``values`` itself
        becomes the message's ``__dict__`` (no copy: the caller hands it over).
        """
        m = _new(cls)
        if len(values) == len(cls._defaults):
            fields = values
        else:
            fields = cls._defaults.copy()
            fields.update(values)
            for name, factory in cls._factories.items():
                if name not in values:
                    fields[name] = factory()
        _setattr(m, "__dict__", fields)
        _setattr(m, "__pydantic_fields_set__", set(values))
        _setattr(m, "__pydantic_extra__", None)
        _setattr(m, "__pydantic_private__", None)
        return m


class _FlatPlan:
    """``to_fields`` of a class whose fields are all plain floats, ints and strs (no
    None, bool or JSON to special-case, e.g. Features): C-level dict operations instead
    of a loop over the fields, about 0.7 us less for Features."""

    def __init__(self, model_fields: dict[str, Any]) -> None:
        self.n_fields = len(model_fields)
        self.float_names = tuple(n for n, i in model_fields.items() if i.annotation is float)
        self.other_names = tuple(n for n in model_fields if n not in self.float_names)
        self.floats_of = itemgetter(*self.float_names)
        self.others_of = itemgetter(*self.other_names)

    @staticmethod
    def of(model_fields: dict[str, Any]) -> _FlatPlan | None:
        kinds = [get_origin(i.annotation) or i.annotation for i in model_fields.values()]
        simple = all(k in (float, int, str, Literal) for k in kinds)
        if simple and kinds.count(float) >= 2 and len(kinds) - kinds.count(float) >= 2:
            return _FlatPlan(model_fields)
        return None

    def encode(self, values: dict[str, Any]) -> dict[str, str | int | float] | None:
        """The fields, or None when the values are not of the declared kinds (a message
        made with model_construct): then the caller goes field by field."""
        if len(values) != self.n_fields:
            return None
        try:
            floats = self.floats_of(values)
            others = self.others_of(values)
        except KeyError:
            return None
        if set(map(type, floats)) != _FLOAT or not _PLAIN.issuperset(map(type, others)):
            return None
        out = values.copy()
        out.update(zip(self.float_names, float_reprs(floats), strict=True))
        return out


_FLOAT = {float}
_PLAIN = {str, int}
_IMMUTABLE = (type(None), bool, int, float, str, bytes, tuple, frozenset)
_new = object.__new__
_setattr = object.__setattr__
_INF = math.inf


def _as_int(bound: Any) -> int:
    return int(bound)


def float_reprs(values: list[float] | tuple[float, ...]) -> list[str]:
    """``[repr(v) for v in values]``, about 10x faster.

    orjson writes the same shortest round-trip digits as repr and the same text for
    every finite float with 1e-4 <= |v| (tests check millions), but 1e-05 as 0.00001 and
    1e-07 as 1e-7, and NaN and infinities as null: such values (rare) take repr.
    """
    text = orjson.dumps(values).decode()
    texts = text[1:-1].split(",") if values else []
    # "e": 1e-07 or 1e+16 (only the first differs); "n": null; ".0000": 0.00001.
    if "e" in text or "n" in text or ".0000" in text:
        return [
            t if 1e-4 <= abs(v) < _INF or v == 0.0 else repr(v)
            for t, v in zip(texts, values, strict=True)
        ]
    return texts


def _validation_reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "entry"
        parts.append(f"{loc}: {err['msg']}")
    return "invalid: " + "; ".join(parts)


def id_checker(*classes: type[Message]) -> Callable[[int, str, int], bool]:
    """``valid(trace_ts_ns, symbol, ts_ns)``: what validation of every one of
    ``classes`` checks of those three fields, for paths that build messages with
    ``trusted``; the limits are read from the models, so they cannot drift."""
    trace = [c.int_bounds("trace_ts_ns") for c in classes]
    ts = [c.int_bounds("ts_ns") for c in classes]
    sym = [c.length_bounds("symbol") for c in classes]
    trace_lo, trace_hi = max(b[0] for b in trace), min(b[1] for b in trace)
    ts_lo, ts_hi = max(b[0] for b in ts), min(b[1] for b in ts)
    sym_lo = max(b[0] for b in sym)
    sym_hi = min((b[1] for b in sym if b[1] is not None), default=None)
    sym_hi_ = sym_hi if sym_hi is not None else MAX_NS

    def valid(trace_ts_ns: int, symbol: str, ts_ns: int) -> bool:
        return (
            type(trace_ts_ns) is int
            and type(ts_ns) is int
            and type(symbol) is str
            and trace_lo <= trace_ts_ns <= trace_hi
            and ts_lo <= ts_ns <= ts_hi
            and sym_lo <= len(symbol) <= sym_hi_
        )

    return valid
