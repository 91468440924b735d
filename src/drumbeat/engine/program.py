"""A campaign compiled for the engine: its steps as a graph of nodes keyed by step id, and
every rule it reads compiled once into a predicate."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from drumbeat.engine.timing import FrequencyCap, Window
from drumbeat.model.attributes import AttrType
from drumbeat.model.campaign import (
    Branch,
    Campaign,
    EventEntry,
    Send,
    Split,
    Step,
    Wait,
    WaitUntil,
    step_id,
)
from drumbeat.model.rules import EventCondition, Rule
from drumbeat.rules.predicate import Predicate, compile_predicate


@dataclass(frozen=True, slots=True)
class SendNode:
    id: str
    next: str | None
    channel: str
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class WaitNode:
    id: str
    next: str | None
    seconds: float


@dataclass(frozen=True, slots=True)
class WaitUntilNode:
    id: str
    next: str | None
    timeout: float
    holds: Predicate


@dataclass(frozen=True, slots=True)
class BranchNode:
    id: str
    then: str | None
    otherwise: str | None
    holds: Predicate


@dataclass(frozen=True, slots=True)
class SplitNode:
    id: str
    paths: tuple[tuple[str, float, str | None], ...]  # (name, cumulative weight, first node)
    total: float

    def pick(self, seed: str) -> tuple[str, str | None]:
        """The path a user takes: a stable hash of (workspace, campaign, split, user), read
        against the paths' weight ranges in name order."""
        digest = hashlib.sha256(seed.encode()).digest()
        point = int.from_bytes(digest[:8], "big") / 2**64 * self.total
        for name, upto, first in self.paths:
            if point < upto:
                return name, first
        name, _, first = self.paths[-1]
        return name, first


Node = SendNode | WaitNode | WaitUntilNode | BranchNode | SplitNode


def send_payload(step: Send) -> dict[str, Any]:
    spec = step.send
    html = (
        spec.html
        if spec.html is not None
        else bool(spec.template and spec.template.endswith((".html", ".htm")))
    )
    payload: dict[str, Any] = {"subject": spec.subject, "body": spec.body, "html": html}
    if spec.url is not None:
        payload["url"] = spec.url
    if spec.data:
        payload["data"] = spec.data
    return payload


@dataclass(frozen=True)
class Program:
    """The compiled campaign. `workspace` is the workspace's name (part of keys and hashes)."""

    workspace: str
    campaign: Campaign
    first: str | None
    nodes: Mapping[str, Node]
    audience: Predicate
    goal: Predicate | None
    window: Window | None
    cap: FrequencyCap | None
    event_conditions: tuple[EventCondition, ...]
    # the user attributes (standard fields included) its decisions read: its rules', and the
    # time zone when a send window holds its sends (a held send is timed by it)
    attributes: frozenset[str] = frozenset()

    @property
    def key(self) -> str:
        return self.campaign.key


def compile_program(
    campaign: Campaign,
    types: Mapping[str, AttrType],
    *,
    workspace: str,
    cap: FrequencyCap | None = None,
) -> Program:
    nodes: dict[str, Node] = {}
    rules: list[Rule] = [campaign.audience]

    def predicate(rule: Rule) -> Predicate:
        rules.append(rule)
        return compile_predicate(rule, types)

    def build(steps: list[Step], after: str | None, prefix: str) -> str | None:
        following = after
        for index in reversed(range(len(steps))):
            step, path = steps[index], f"{prefix}[{index}]"
            node_id = step_id(step, path)
            node: Node
            if isinstance(step, Send):
                payload = send_payload(step)
                if step.send.template is not None:
                    payload["body"] = campaign.templates[step.send.template]
                node = SendNode(node_id, following, step.send.channel, payload)
            elif isinstance(step, Wait):
                node = WaitNode(node_id, following, step.seconds)
            elif isinstance(step, WaitUntil):
                spec = step.wait_until
                node = WaitUntilNode(node_id, following, spec.timeout, predicate(spec.rule))
            elif isinstance(step, Branch):
                b = step.branch
                node = BranchNode(
                    node_id,
                    build(b.then, following, f"{path}.branch.then"),
                    build(b.else_, following, f"{path}.branch.else"),
                    predicate(b.if_),
                )
            else:
                node = _split(step, node_id, following, path, build)
            nodes[node_id] = node
            following = node_id
        return following

    first = build(campaign.steps, None, "steps")
    goal = predicate(campaign.goal.rule) if campaign.goal else None
    window = Window.of(campaign.send_window) if campaign.send_window else None
    attributes = frozenset().union(*(rule.attributes() for rule in rules))
    if window is not None:
        attributes |= {"timezone"}
    conditions: dict[str, EventCondition] = {}
    for rule in rules:
        for cond in rule.event_conditions():
            conditions.setdefault(cond.key, cond)
    return Program(
        workspace,
        campaign,
        first,
        nodes,
        compile_predicate(campaign.audience, types),
        goal,
        window,
        cap,
        tuple(conditions.values()),
        attributes,
    )


def read_names(program: Program) -> frozenset[tuple[str, str]]:
    """What a campaign's rules and entry read: ("name", attribute or field compared) and
    ("event", name counted or started on). A change to anything else moves none of its
    decisions: the one-user event path and the planner look at a changed user only for
    the campaigns that read one of its changes."""
    on = program.campaign.entry.on
    events = {condition.event for condition in program.event_conditions}
    if isinstance(on, EventEntry):
        events.add(on.event)
    return frozenset({("name", n) for n in program.attributes} | {("event", e) for e in events})


def _split(step: Split, node_id: str, following: str | None, path: str, build: Any) -> SplitNode:
    """The paths take their weight ranges in name order, not in the order written: a store
    may reorder an object's keys (PostgreSQL's JSONB puts shorter keys first), and the
    ranges must be the same on every store for a user to get the same path."""
    paths, upto = [], 0.0
    for name, branch in sorted(step.split.paths.items()):
        upto += branch.weight
        paths.append(
            (name, upto, build(branch.steps, following, f"{path}.split.paths.{name}.steps"))
        )
    return SplitNode(node_id, tuple(paths), upto)
