"""The rule language as an AST of frozen pydantic models, and its parser.

A rule is one of `{all: [rules]}`, `{any: [rules]}`, `{not: rule}`, an attribute condition
`{attr: NAME, OP: VALUE}` or an event condition `{event: NAME, count: {gte: 1}, within: 14d,
where: RULE}`. `Rule` is the validated union: use it as a field type in larger models, or
call `parse_rule`. Values are kept as written; what they mean for an attribute's type is
decided when a rule is compiled (see `drumbeat.rules`). docs/rules.md is the reference.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, ClassVar, Self, TypeAlias

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from drumbeat.errors import InvalidInput, Problem
from drumbeat.model.problems import problems_from_validation
from drumbeat.model.rule_values import (
    Count,
    Flag,
    Name,
    OrderedValue,
    RuleValue,
    Scalar,
    Seconds,
    Text,
    TimeValue,
    fail,
)


class Op(StrEnum):
    """The operators of an attribute condition."""

    EQ = "eq"
    NE = "ne"
    IN = "in"
    NOT_IN = "not_in"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    EXISTS = "exists"
    CONTAINS = "contains"
    STARTS_WITH = "starts_with"
    BEFORE = "before"
    AFTER = "after"


LIST_OPS = frozenset({Op.IN, Op.NOT_IN})


class Node(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    def __repr_args__(self) -> Iterator[tuple[str | None, object]]:
        return ((k, v) for k, v in super().__repr_args__() if v is not None)


def _exactly_one(node: BaseModel, names: tuple[str, ...]) -> None:
    given = [name.rstrip("_") for name in names if getattr(node, name) is not None]
    if not given:
        shown = ", ".join(n.rstrip("_") for n in names)
        raise fail("one_of", f"expected an operator: one of {shown}")
    if len(given) > 1:
        raise fail("one_of", f"expected one operator, got {' and '.join(given)}")


def _no_nulls(data: object, names: tuple[str, ...]) -> object:
    """Refuse `{eq: null}`: without this an explicit null would read as no operator."""
    if isinstance(data, Mapping):
        for name in names:
            if name in data and data[name] is None:
                raise PydanticCustomError("null", "expected a value, not null", {"at": f".{name}"})
    return data


class RuleNode(Node):
    """What every rule is. `tag` names its kind for the union's discriminator."""

    tag: ClassVar[str]

    def walk(self, path: str = "") -> Iterator[tuple[str, RuleNode]]:
        """Every node with its path, depth first, not entering an event's `where`."""
        yield path, self
        for child_path, child in self._child_paths(path):
            yield from child.walk(child_path)

    def _child_paths(self, path: str) -> Iterator[tuple[str, Rule]]:
        return iter(())

    def event_conditions(self) -> tuple[EventCondition, ...]:
        """The event conditions this rule reads, deduplicated by `key`, in order."""
        found: dict[str, EventCondition] = {}
        for _, node in self.walk():
            if isinstance(node, EventCondition):
                found.setdefault(node.key, node)
        return tuple(found.values())

    def attributes(self) -> frozenset[str]:
        """The user attributes (standard fields included) this rule reads."""
        return frozenset(n.attr for _, n in self.walk() if isinstance(n, AttrCondition))


class AllOf(RuleNode):
    """True when every rule is (an empty list is true)."""

    tag: ClassVar[str] = "<all>"
    rules: tuple[Rule, ...] = Field(alias="all")

    def _child_paths(self, path: str) -> Iterator[tuple[str, Rule]]:
        return ((f"{path}.all[{i}]", rule) for i, rule in enumerate(self.rules))


class AnyOf(RuleNode):
    """True when at least one rule is (an empty list is false)."""

    tag: ClassVar[str] = "<any>"
    rules: tuple[Rule, ...] = Field(alias="any")

    def _child_paths(self, path: str) -> Iterator[tuple[str, Rule]]:
        return ((f"{path}.any[{i}]", rule) for i, rule in enumerate(self.rules))


class Not(RuleNode):
    """True when its rule is false."""

    tag: ClassVar[str] = "<not>"
    rule: Rule = Field(alias="not")

    def _child_paths(self, path: str) -> Iterator[tuple[str, Rule]]:
        return iter(((f"{path}.not", self.rule),))


_OP_FIELDS: dict[Op, str] = {op: ("in_" if op is Op.IN else op.value) for op in Op}


class AttrCondition(RuleNode):
    """`{attr: NAME, OP: VALUE}` with exactly one operator."""

    tag: ClassVar[str] = "<attr>"
    attr: Name
    eq: RuleValue | None = None
    ne: RuleValue | None = None
    in_: tuple[RuleValue, ...] | None = Field(None, alias="in")
    not_in: tuple[RuleValue, ...] | None = None
    gt: OrderedValue | None = None
    gte: OrderedValue | None = None
    lt: OrderedValue | None = None
    lte: OrderedValue | None = None
    exists: Flag | None = None
    contains: Text | None = None
    starts_with: Text | None = None
    before: TimeValue | None = None
    after: TimeValue | None = None

    @model_validator(mode="before")
    @classmethod
    def _refuse_nulls(cls, data: object) -> object:
        return _no_nulls(data, tuple(op.value for op in Op))

    @model_validator(mode="after")
    def _one_operator(self) -> Self:
        _exactly_one(self, tuple(_OP_FIELDS.values()))
        return self

    @property
    def op(self) -> Op:
        return next(op for op, name in _OP_FIELDS.items() if getattr(self, name) is not None)

    @property
    def value(self) -> Scalar | tuple[Scalar, ...]:
        value: Scalar | tuple[Scalar, ...] = getattr(self, _OP_FIELDS[self.op])
        return value


_COUNT_OPS = ("gte", "gt", "lte", "lt", "eq")


class CountBound(Node):
    """`{gte|gt|lte|lt|eq: n}`: how many matching events a user must have."""

    gte: Count | None = None
    gt: Count | None = None
    lte: Count | None = None
    lt: Count | None = None
    eq: Count | None = None

    @model_validator(mode="before")
    @classmethod
    def _refuse_nulls(cls, data: object) -> object:
        return _no_nulls(data, _COUNT_OPS)

    @model_validator(mode="after")
    def _one_operator(self) -> Self:
        _exactly_one(self, _COUNT_OPS)
        return self

    def bounds(self) -> tuple[int, float]:
        """The inclusive range of counts that match; `lo > hi` when none does."""
        op = next(name for name in _COUNT_OPS if getattr(self, name) is not None)
        n: int = getattr(self, op)
        ranges: dict[str, tuple[int, float]] = {
            "gte": (n, math.inf),
            "gt": (n + 1, math.inf),
            "lte": (0, n),
            "lt": (0, n - 1),
            "eq": (n, n),
        }
        return ranges[op]


class EventCondition(RuleNode):
    """Events named `event`, in the last `within` seconds (all time if None) and matching
    `where` over their properties, counted and compared with `count`."""

    tag: ClassVar[str] = "<event>"
    event: Name
    count: CountBound = CountBound(gte=1)
    within: Seconds | None = None
    where: Rule | None = None

    @field_validator("where")
    @classmethod
    def _reads_properties(cls, where: Rule | None) -> Rule | None:
        for at, node in () if where is None else where.walk():
            if isinstance(node, EventCondition):
                raise PydanticCustomError(
                    "where", "event conditions are not allowed in where", {"at": at}
                )
            if isinstance(node, AttrCondition) and node.op in (Op.BEFORE, Op.AFTER):
                raise PydanticCustomError(
                    "where", "event properties hold no timestamps: use eq, gt, lt…", {"at": at}
                )
        return where

    @property
    def key(self) -> str:
        """Names what is counted (event, within, where; not `count`): the key of its fact."""
        return _event_key(self)


@lru_cache(maxsize=4096)
def _event_key(cond: EventCondition) -> str:
    data = cond.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"count"})
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "e" + hashlib.sha1(canonical.encode()).hexdigest()[:12]


_KINDS = ("all", "any", "not", "attr", "event")


def _rule_tag(value: object) -> str | None:
    if isinstance(value, RuleNode):
        return value.tag
    if isinstance(value, Mapping):
        return next((f"<{kind}>" for kind in _KINDS if kind in value), None)
    return None


Rule: TypeAlias = Annotated[
    Annotated[AllOf, Tag("<all>")]
    | Annotated[AnyOf, Tag("<any>")]
    | Annotated[Not, Tag("<not>")]
    | Annotated[AttrCondition, Tag("<attr>")]
    | Annotated[EventCondition, Tag("<event>")],
    Discriminator(
        _rule_tag,
        custom_error_type="rule",
        custom_error_message="expected a rule: a mapping with all, any, not, attr or event",
    ),
]

for _model in (AllOf, AnyOf, Not, EventCondition):
    _model.model_rebuild()

_RULE: TypeAdapter[Rule] = TypeAdapter(Rule)


def parse_rule(data: object, path: str = "") -> Rule:
    """Validate a rule read from YAML/JSON; InvalidInput names each problem's path."""
    try:
        return _RULE.validate_python(data)
    except ValidationError as exc:
        raise InvalidInput(problems_from_validation(exc, path), what="rule") from None


def dump_rule(rule: Rule) -> object:
    """The rule as plain JSON data, in the shape `parse_rule` reads."""
    data: object = _RULE.dump_python(rule, mode="json", by_alias=True, exclude_none=True)
    return data


__all__ = [
    "LIST_OPS",
    "AllOf",
    "AnyOf",
    "AttrCondition",
    "CountBound",
    "EventCondition",
    "Not",
    "Op",
    "Problem",
    "Rule",
    "RuleNode",
    "Scalar",
    "Seconds",
    "dump_rule",
    "parse_rule",
    "problems_from_validation",
]
