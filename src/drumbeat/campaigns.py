"""Campaign files in, stored versions out: `check` and `apply`.

A definition is read (YAML or JSON), its templates are read from the file's folder, and it
is checked whole — the schema, then what would fail every message (`campaign_checks.py`):
unknown channels, refused webhook URLs, templates, rules against the workspace's attribute
types. Nothing is stored from a definition with a problem. A new version of a campaign with
members says, before it commits, what happens to members whose step no longer exists:
they exit as `completed`. Applying a campaign or changing its status keeps the store's
attribute indexes in step with the rules of live campaigns (`store/indexes.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from drumbeat.campaign_checks import Known, known
from drumbeat.campaign_checks import check as check  # `campaign check` imports it here
from drumbeat.engine.member import END, START
from drumbeat.errors import InvalidInput, Problem
from drumbeat.model.campaign import (
    Branch,
    Campaign,
    Send,
    Split,
    Step,
    Wait,
    WaitUntil,
    dump_campaign,
    parse_campaign,
    walk_steps,
)
from drumbeat.model.documents import load_document
from drumbeat.model.durations import format_duration
from drumbeat.store import Store
from drumbeat.store.campaigns import CampaignVersion, archived
from drumbeat.store.indexes import IndexSync

log = logging.getLogger(__name__)


def read_campaign(path: Path) -> Campaign:
    """Parse a campaign file, reading the templates it names from the same folder."""
    doc = load_document(path)
    if isinstance(doc, dict) and "templates" not in doc:
        doc = {**doc, "templates": dict(_template_files(doc, path.parent))}
    return parse_campaign(doc)


CAMPAIGN_SUFFIXES = (".yaml", ".yml", ".json")


def campaign_files(paths: Iterable[Path]) -> list[Path]:
    """Files as given; a folder gives the campaign files directly in it, by name."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix.lower() in CAMPAIGN_SUFFIXES)
        else:
            found.append(path)
    return found


def at_source(source: str, exc: InvalidInput) -> list[Problem]:
    """A definition's problems, each under the file (or item) it came from."""
    return [
        p
        if p.where.startswith(source)
        else Problem(f"{source}: {p.where}" if p.where else source, p.message)
        for p in exc.problems
    ]


def plan_sources(
    sources: Sequence[tuple[str, Campaign]],
    store: Store,
    ws: int,
    *,
    webhook_allow: Sequence[str] | None = None,
) -> list[ApplyPlan]:
    """Check and plan several definitions together: every problem of every one, each at its
    source, and two definitions of one key refused."""
    plans: list[ApplyPlan] = []
    problems: list[Problem] = []
    seen: dict[str, str] = {}  # key → the source that defined it first
    # the settings and channels read once, not per campaign
    against = known(store, ws, webhook_allow=webhook_allow)
    for source, campaign in sources:
        if campaign.key in seen:
            problems.append(
                Problem(f"{source}: key", f"{campaign.key!r} is also in {seen[campaign.key]}")
            )
            continue
        seen[campaign.key] = source
        try:
            plans.append(plan_apply(campaign, store, ws, against=against))
        except InvalidInput as exc:
            problems += at_source(source, exc)
    if problems:
        raise InvalidInput(problems, what="campaigns (nothing was stored)")
    return plans


def _template_files(doc: dict[str, Any], folder: Path) -> Iterator[tuple[str, str]]:
    def names(steps: object) -> Iterator[str]:
        for step in steps if isinstance(steps, list) else []:
            if not isinstance(step, dict):
                continue
            send = step.get("send")
            if isinstance(send, dict) and isinstance(send.get("template"), str):
                yield send["template"]
            branch = step.get("branch")
            if isinstance(branch, dict):
                yield from names(branch.get("then"))
                yield from names(branch.get("else"))
            split = step.get("split")
            if isinstance(split, dict) and isinstance(split.get("paths"), dict):
                for path in split["paths"].values():
                    if isinstance(path, dict):
                        yield from names(path.get("steps"))

    for name in names(doc.get("steps")):
        file = (folder / name).resolve()
        if file.is_file() and folder.resolve() in file.parents:
            yield name, file.read_text(encoding="utf-8")


@dataclass
class ApplyPlan:
    campaign: Campaign
    version: int
    moved: dict[str, int] = field(default_factory=dict)  # vanished position → members
    kept: int = 0


def plan_apply(
    campaign: Campaign,
    store: Store,
    ws: int,
    *,
    webhook_allow: Sequence[str] | None = None,
    against: Known | None = None,
) -> ApplyPlan:
    """What storing `campaign` would do, once it passes `check` (else InvalidInput)."""
    check(campaign, store, ws, webhook_allow=webhook_allow, against=against)
    current = store.campaign(ws, campaign.key)
    if current is not None and current.status == "archived":
        raise archived(campaign.key)
    plan = ApplyPlan(campaign, 1 if current is None else current.version + 1)
    if current is None:
        return plan
    ids = {step_id for _, step_id, _ in walk_steps(campaign.steps)} | {START, END}
    for position, count in store.positions(ws, campaign.key).items():
        if position in ids:
            plan.kept += count
        else:
            plan.moved[position] = count
    return plan


def apply(plan: ApplyPlan, store: Store, ws: int, now: float, *, activate: bool = False) -> int:
    """Store one new version (see `apply_all`)."""
    return apply_all([plan], store, ws, now, activate=activate)[0]


def apply_all(
    plans: Sequence[ApplyPlan], store: Store, ws: int, now: float, *, activate: bool = False
) -> list[int]:
    """Store every new version in one transaction, all or none; members at vanished steps
    exit as completed, and kept members are looked at again on the next tick."""
    versions = []
    for plan in plans:
        current = store.campaign(ws, plan.campaign.key)
        status = "active" if activate else (current.status if current else "draft")
        versions.append(
            CampaignVersion(
                plan.campaign.key,
                plan.campaign.name,
                dump_campaign(plan.campaign),
                status,
                vanished=tuple(plan.moved),
            )
        )
    written = store.save_versions(ws, versions, now)
    sync_indexes(store)
    return written


def set_status(store: Store, ws: int, key: str, status: str, now: float) -> None:
    """Pause, resume or archive a campaign; a campaign that becomes live or stops being live
    changes which attributes the store indexes."""
    store.set_campaign_status(ws, key, status, now)
    sync_indexes(store)


def sync_indexes(store: Store) -> IndexSync | None:
    """Build and drop attribute indexes after the campaign change committed. An index is an
    optimisation: a failure is logged (`drumbeat db indexes --sync` tries again), not raised."""
    try:
        return store.sync_attribute_indexes()
    except SQLAlchemyError as exc:
        log.warning("attribute indexes not synced (%s); run `drumbeat db indexes --sync`", exc)
        return None


def step_tree(steps: list[Step], indent: str = "") -> Iterator[str]:
    """The steps as indented lines, for `campaign check` and `campaign show`."""
    for path, step_id, step in walk_steps(steps):
        depth = path.count("[") - 1
        pad = indent + "  " * depth
        if isinstance(step, Send):
            yield f"{pad}send {step_id} via {step.send.channel}: {step.send.subject!r}"
        elif isinstance(step, Wait):
            yield f"{pad}wait {format_duration(step.seconds)}  [{step_id}]"
        elif isinstance(step, WaitUntil):
            timeout = format_duration(step.wait_until.timeout)
            yield f"{pad}wait until rule holds, at most {timeout}  [{step_id}]"
        elif isinstance(step, Branch):
            yield (
                f"{pad}branch {step_id}: then {len(step.branch.then)} steps, "
                f"else {len(step.branch.else_)}"
            )
        elif isinstance(step, Split):
            weights = ", ".join(f"{n} {p.weight:g}" for n, p in sorted(step.split.paths.items()))
            yield f"{pad}split {step_id}: {weights}"
