"""Campaign definitions: the pydantic model of DESIGN.md's campaign language, and its parser.

`parse_campaign(data)` validates a YAML/JSON document; every problem names its path
(`steps[2].branch.if.gte: expected a number`). Step ids (required on send, branch and split;
optional on waits, which default to their path) are unique in a campaign: they are the
positions members wait at and the outbox's dedupe keys, so they survive new versions.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from drumbeat.errors import InvalidInput, Problem
from drumbeat.model.problems import problems_from_validation
from drumbeat.model.rules import Rule, Seconds

KEY = r"^[a-z0-9][a-z0-9-]{0,99}$"
STEP_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
DEFAULT_INACTIVE_AFTER = 30 * 86400.0


class Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class SendSpec(Part):
    id: Annotated[str, Field(pattern=STEP_ID)]
    channel: Annotated[str, Field(min_length=1, max_length=50)]
    subject: str = ""
    body: str | None = None
    template: str | None = None  # a file next to the campaign file, read in by `apply`
    html: bool | None = None  # default: true when the template's name ends in .html
    url: str | None = None  # webhook target
    data: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _has_content(self) -> SendSpec:
        if (self.body is None) == (self.template is None):
            raise ValueError("give exactly one of body and template")
        return self


class Send(Part):
    send: SendSpec


class WaitSpec(Part):
    duration: Seconds = Field(alias="for")
    id: Annotated[str, Field(pattern=STEP_ID)] | None = None


class Wait(Part):
    wait: WaitSpec

    @field_validator("wait", mode="before")
    @classmethod
    def _short_form(cls, value: object) -> object:
        """`wait: 2d` is `wait: {for: 2d}`."""
        return value if isinstance(value, Mapping | BaseModel) else {"for": value}

    @property
    def seconds(self) -> float:
        return self.wait.duration

    @property
    def given_id(self) -> str | None:
        return self.wait.id


class WaitUntilSpec(Part):
    rule: Rule
    timeout: Seconds
    id: Annotated[str, Field(pattern=STEP_ID)] | None = None


class WaitUntil(Part):
    wait_until: WaitUntilSpec


class BranchSpec(Part):
    id: Annotated[str, Field(pattern=STEP_ID)]
    if_: Rule = Field(alias="if")
    then: list[Step] = Field(default_factory=list)
    else_: list[Step] = Field(default_factory=list, alias="else")


class Branch(Part):
    branch: BranchSpec


class SplitPath(Part):
    weight: Annotated[float, Field(gt=0)]
    steps: list[Step] = Field(default_factory=list)


class SplitSpec(Part):
    id: Annotated[str, Field(pattern=STEP_ID)]
    paths: dict[Annotated[str, Field(pattern=STEP_ID)], SplitPath]

    @field_validator("paths")
    @classmethod
    def _two_or_more(cls, paths: dict[str, SplitPath]) -> dict[str, SplitPath]:
        if len(paths) < 2:
            raise ValueError("a split needs at least two paths")
        return paths


class Split(Part):
    split: SplitSpec


_STEP_KINDS = ("send", "wait_until", "wait", "branch", "split")


def _step_tag(value: object) -> str | None:
    if isinstance(value, Mapping):
        return next((f"<{kind}>" for kind in _STEP_KINDS if kind in value), None)
    if isinstance(value, BaseModel):
        fields = type(value).model_fields
        return next((f"<{kind}>" for kind in _STEP_KINDS if kind in fields), None)
    return None


Step: TypeAlias = Annotated[
    Annotated[Send, Tag("<send>")]
    | Annotated[Wait, Tag("<wait>")]
    | Annotated[WaitUntil, Tag("<wait_until>")]
    | Annotated[Branch, Tag("<branch>")]
    | Annotated[Split, Tag("<split>")],
    Discriminator(
        _step_tag,
        custom_error_type="step",
        custom_error_message="expected a step: send, wait, wait_until, branch or split",
    ),
]


class EventEntry(Part):
    event: Annotated[str, Field(min_length=1, max_length=200)]


class Entry(Part):
    on: Literal["audience"] | EventEntry = "audience"
    reentry: Literal["never"] | Seconds = "never"


class Goal(Part):
    rule: Rule
    window: Seconds = 30 * 86400.0


class Exit(Part):
    when_no_longer_matching: bool = False
    inactive_after: Seconds = DEFAULT_INACTIVE_AFTER


class SendWindow(Part):
    days: list[Day] = list(DAYS)
    from_: str = Field("00:00", alias="from")
    to: str = "24:00"

    @field_validator("from_", "to")
    @classmethod
    def _clock(cls, value: str) -> str:
        if value != "24:00" and not _CLOCK.match(value):
            raise ValueError("expected a time of day such as 09:00")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> SendWindow:
        if not self.days:
            raise ValueError("a send window needs at least one day")
        if self.from_ >= self.to:
            raise ValueError("`from` must come before `to` (windows do not span midnight)")
        return self


def _key(value: object) -> object:
    if not isinstance(value, str) or not re.match(KEY, value):
        raise ValueError("expected lowercase letters, digits and dashes, such as trial-to-paid")
    return value


class Campaign(Part):
    key: Annotated[str, BeforeValidator(_key)]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    audience: Rule
    entry: Entry = Entry()
    goal: Goal | None = None
    exit: Exit = Exit()
    send_window: SendWindow | None = None
    # the lane its batches run in; unset: chosen by measured cost (pipeline/lanes.py)
    lane: Literal["fast", "slow"] | None = None
    steps: list[Step] = Field(min_length=1)
    # template name → text; `campaign apply` reads each `template:` from next to the file
    templates: dict[str, str] = Field(default_factory=dict)

    def template_names(self) -> list[tuple[str, str]]:
        """(path, template name) of every send step that names a template file."""
        return [
            (f"{path}.send.template", step.send.template)
            for path, _, step in walk_steps(self.steps)
            if isinstance(step, Send) and step.send.template is not None
        ]

    @model_validator(mode="after")
    def _unique_ids(self) -> Campaign:
        seen: dict[str, str] = {}
        for path, step_id, _ in walk_steps(self.steps):
            if step_id in seen:
                raise ValueError(
                    f"step id {step_id!r} at {path} is already used at {seen[step_id]}"
                )
            seen[step_id] = path
        for where, name in self.template_names():
            if name not in self.templates:
                raise ValueError(
                    f"{where}: no template named {name!r} (it is read from the "
                    "campaign file's folder)"
                )
        return self


for _model in (BranchSpec, SplitPath, Campaign):
    _model.model_rebuild()


def step_id(step: Step, path: str) -> str:
    """The id a step is known by: its own, or (for waits without one) its path."""
    if isinstance(step, Send):
        return step.send.id
    if isinstance(step, Branch):
        return step.branch.id
    if isinstance(step, Split):
        return step.split.id
    if isinstance(step, Wait):
        return step.given_id or path
    return step.wait_until.id or path


def walk_steps(steps: list[Step], prefix: str = "steps") -> Iterator[tuple[str, str, Step]]:
    """(path, id, step) for every step, depth first, in order."""
    for index, step in enumerate(steps):
        path = f"{prefix}[{index}]"
        yield path, step_id(step, path), step
        if isinstance(step, Branch):
            yield from walk_steps(step.branch.then, f"{path}.branch.then")
            yield from walk_steps(step.branch.else_, f"{path}.branch.else")
        elif isinstance(step, Split):
            for name, branch in step.split.paths.items():
                yield from walk_steps(branch.steps, f"{path}.split.paths.{name}.steps")


_CAMPAIGN: TypeAdapter[Campaign] = TypeAdapter(Campaign)


def parse_campaign(data: object, path: str = "") -> Campaign:
    """Validate a campaign document; InvalidInput lists every problem with its path."""
    try:
        return _CAMPAIGN.validate_python(data)
    except ValidationError as exc:
        raise InvalidInput(problems_from_validation(exc, path), what="campaign") from None


def dump_campaign(campaign: Campaign) -> dict[str, Any]:
    data: dict[str, Any] = campaign.model_dump(mode="json", by_alias=True, exclude_none=True)
    return data


def problem(where: str, message: str) -> InvalidInput:
    return InvalidInput([Problem(where, message)], what="campaign")
