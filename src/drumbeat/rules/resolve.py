"""What an attribute condition means once the attribute's type is known.

Both compilers (Python predicate and SQL) start from the `Check` made here, so they cannot
disagree on types: the expected type is the attribute's declared type, else inferred from
the rule's value; values that do not fit it are dropped (a single value that does not fit
makes the condition constant false), and operators that do not apply to it are false too.
In an event's `where`, keys are untyped and strings stay strings (`types=None`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from drumbeat.errors import Problem
from drumbeat.model.attributes import STANDARD_FIELDS, AttrType, Value
from drumbeat.model.durations import TIME_HELP, InvalidTime, TimeRef, is_time, parse_time
from drumbeat.model.rules import AttrCondition, Op, Rule, Scalar

_ORDERED = frozenset({Op.GT, Op.GTE, Op.LT, Op.LTE})
_ANY_TYPE = frozenset({Op.EQ, Op.NE, Op.IN, Op.NOT_IN, Op.EXISTS})
APPLIES: dict[AttrType, frozenset[Op]] = {
    AttrType.STRING: _ANY_TYPE | _ORDERED | {Op.CONTAINS, Op.STARTS_WITH},
    AttrType.NUMBER: _ANY_TYPE | _ORDERED,
    AttrType.BOOLEAN: _ANY_TYPE,
    AttrType.TIMESTAMP: _ANY_TYPE | _ORDERED | {Op.BEFORE, Op.AFTER},
}
_EXPECTED: dict[AttrType, str] = {
    AttrType.STRING: "expected a string",
    AttrType.NUMBER: "expected a number",
    AttrType.BOOLEAN: "expected true or false",
    AttrType.TIMESTAMP: TIME_HELP,
}
Constant = Value | TimeRef


@dataclass(frozen=True, slots=True)
class Check:
    """A condition ready to compile. `type` is the runtime type a value must have (None: any
    present value); `values` are the constants of that type (times still relative);
    `constant` is the result for every user when the condition cannot match."""

    attr: str
    op: Op
    type: AttrType | None
    values: tuple[Constant, ...] = ()
    constant: bool | None = None

    @property
    def relative(self) -> bool:
        """Whether a value depends on `now`."""
        return any(isinstance(v, TimeRef) and v.relative for v in self.values)

    def at(self, now: float) -> tuple[Value, ...]:
        """The values with times resolved for an evaluation at `now`."""
        return tuple(v.resolve(now) if isinstance(v, TimeRef) else v for v in self.values)


def declared_type(attr: str, types: Mapping[str, AttrType] | None) -> AttrType | None:
    """The attribute's fixed type: standard fields first, then `types`."""
    if types is None:
        return None
    return STANDARD_FIELDS.get(attr) or types.get(attr)


def _value_type(value: Scalar, timestamps: bool) -> AttrType:
    if isinstance(value, bool):
        return AttrType.BOOLEAN
    if isinstance(value, int | float):
        return AttrType.NUMBER
    return AttrType.TIMESTAMP if timestamps and is_time(value) else AttrType.STRING


def inferred_type(cond: AttrCondition, timestamps: bool) -> AttrType | None:
    """The type a condition's value implies (None for an empty list)."""
    op, value = cond.op, cond.value
    if op in (Op.BEFORE, Op.AFTER):
        return AttrType.TIMESTAMP
    if op in (Op.CONTAINS, Op.STARTS_WITH):
        return AttrType.STRING
    if isinstance(value, tuple):
        return _value_type(value[0], timestamps) if value else None
    return _value_type(value, timestamps)


def fit(value: Scalar, attr_type: AttrType) -> Constant | None:
    """`value` as a constant of `attr_type`, or None when it does not fit."""
    if attr_type is AttrType.TIMESTAMP:
        if isinstance(value, bool):
            return None
        try:
            return parse_time(value)
        except InvalidTime:
            return None
    if attr_type is AttrType.BOOLEAN:
        return value if isinstance(value, bool) else None
    if attr_type is AttrType.NUMBER:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return value if number else None
    return value if isinstance(value, str) else None


def resolve(cond: AttrCondition, types: Mapping[str, AttrType] | None) -> Check:
    """The Check for `cond`; `types=None` reads event properties (untyped, no timestamps)."""
    op, raw = cond.op, cond.value
    if op is Op.EXISTS:
        return Check(cond.attr, op, None, (bool(raw),))
    attr_type = declared_type(cond.attr, types) or inferred_type(cond, types is not None)
    if attr_type is None:  # an empty list on an untyped attribute
        return Check(cond.attr, op, None, constant=False if op is Op.IN else None)
    if op not in APPLIES[attr_type]:
        return Check(cond.attr, op, attr_type, constant=False)
    items = raw if isinstance(raw, tuple) else (raw,)
    kept = tuple(v for v in (fit(item, attr_type) for item in items) if v is not None)
    if not kept and op is not Op.NOT_IN:
        return Check(cond.attr, op, attr_type, constant=False)
    return Check(cond.attr, op, attr_type, kept)


def type_problems(rule: Rule, types: Mapping[str, AttrType], prefix: str = "") -> list[Problem]:
    """Conditions on attributes of a known type whose operator or value cannot fit it, for
    refusing a definition (`gte: five` on a number): compiled as written, they are false."""
    return [found for path, node in rule.walk(prefix) for found in _problems(path, node, types)]


def _problems(path: str, node: object, types: Mapping[str, AttrType]) -> Iterator[Problem]:
    if not isinstance(node, AttrCondition) or node.op is Op.EXISTS:
        return
    attr_type = declared_type(node.attr, types)
    if attr_type is None:
        return
    where = f"{path}.{node.op.value}".lstrip(".")
    if node.op not in APPLIES[attr_type]:
        yield Problem(where, f"does not apply to {node.attr}, a {attr_type} attribute")
        return
    value = node.value
    if isinstance(value, tuple):
        for i, item in enumerate(value):
            if fit(item, attr_type) is None:
                yield Problem(f"{where}[{i}]", _EXPECTED[attr_type])
    elif fit(value, attr_type) is None:
        yield Problem(where, _EXPECTED[attr_type])


__all__ = ["APPLIES", "Check", "declared_type", "inferred_type", "resolve", "type_problems"]
