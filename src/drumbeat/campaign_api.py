"""`Drumbeat.campaigns`: check, apply, list, show, pause, resume, archive — what `drumbeat
campaign …` does, for a Python program. Definitions come as files, folders (their *.yaml,
*.yml and *.json), parsed documents or `Campaign` models; several are checked together and
applied in one transaction: one bad definition and nothing is stored."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drumbeat.campaign_stats import campaign_stats, messages_by_step
from drumbeat.campaigns import (
    CAMPAIGN_SUFFIXES,
    ApplyPlan,
    apply_all,
    at_source,
    campaign_files,
    plan_sources,
    read_campaign,
    set_status,
    step_tree,
)
from drumbeat.errors import InvalidInput, Problem
from drumbeat.model.campaign import Campaign, parse_campaign
from drumbeat.pipeline.lanes import lane_of
from drumbeat.store.campaigns import CampaignRow
from drumbeat.views import Applied, CampaignDetail, CampaignStats, CampaignSummary, Checked

if TYPE_CHECKING:
    from drumbeat.client import Drumbeat

Definition = str | Path | Mapping[str, Any] | Campaign
Definitions = Definition | Iterable[Definition]
Plans = list[tuple[str, ApplyPlan]]  # each with its source: a file, or [i] for data


class Campaigns:
    def __init__(self, client: Drumbeat) -> None:
        self._client = client

    def check(self, definitions: Definitions) -> builtins.list[Checked]:
        """Validate every definition; InvalidInput lists every problem, each at its source."""
        client = self._client
        plans = self._plans(definitions)
        return [
            Checked(
                source,
                plan.campaign.key,
                plan.campaign.name,
                list(step_tree(plan.campaign.steps)),
                client.audience_count(plan.campaign.audience),
            )
            for source, plan in plans
        ]

    def apply(
        self, definitions: Definitions, *, activate: bool = False, dry_run: bool = False
    ) -> builtins.list[Applied]:
        """Store each campaign, or its next version, all in one transaction; a version that
        removes a step makes the members waiting there exit as completed (see `moved`)."""
        client = self._client
        plans = self._plans(definitions)
        versions = [plan.version for _, plan in plans]
        statuses: builtins.list[str | None] = [None] * len(plans)
        if not dry_run:
            now = client.clock()
            versions = apply_all(
                [p for _, p in plans], client.store, client.ws, now, activate=activate
            )
            statuses = [self.require(plan.campaign.key).status for _, plan in plans]
        return [
            Applied(source, plan.campaign.key, version, status, plan.kept, dict(plan.moved))
            for (source, plan), version, status in zip(plans, versions, statuses, strict=True)
        ]

    def list(self) -> builtins.list[CampaignSummary]:
        client = self._client
        summaries = []
        measured = client.store.lane_rows(client.ws)
        for row in client.store.campaigns(client.ws):
            counts = client.store.member_counts(client.ws, row.key)
            summaries.append(
                CampaignSummary(
                    row.key,
                    row.name,
                    row.status,
                    row.version,
                    counts.get("active", 0),
                    sum(counts.values()),
                    *lane_of(
                        parse_campaign(row.definition), measured.get((row.workspace_id, row.key))
                    ),
                )
            )
        return summaries

    def show(self, key: str) -> CampaignDetail:
        client = self._client
        row = self.require(key)
        definition = parse_campaign(row.definition)
        return CampaignDetail(
            key,
            row.name,
            row.status,
            row.version,
            row.updated_at,
            list(step_tree(definition.steps)),
            client.store.member_counts(client.ws, key),
            client.store.positions(client.ws, key),
            messages_by_step(client.store, client.ws, key),
            *lane_of(definition, client.store.lane_rows(client.ws).get((client.ws, key))),
        )

    def stats(self, key: str) -> CampaignStats:
        """Messages by step and status, members by state, exits by reason, and conversion
        per path of the campaign's first split (its control group against the others)."""
        return campaign_stats(self._client.store, self._client.ws, self.require(key))

    def pause(self, key: str) -> None:
        """Stop planning and running the campaign; members stay where they are."""
        self._set_status(key, "paused")

    def resume(self, key: str) -> None:
        """Make a draft or paused campaign active."""
        self._set_status(key, "active")

    def archive(self, key: str) -> None:
        """Retire the campaign for good: nothing runs; its history stays."""
        self._set_status(key, "archived")

    def require(self, key: str) -> CampaignRow:
        """The stored campaign, or InvalidInput naming the workspace's campaigns."""
        client = self._client
        row = client.store.campaign(client.ws, key)
        if row is not None:
            return row
        keys = ", ".join(r.key for r in client.store.campaigns(client.ws)) or "none"
        workspace = client.config.workspace
        raise InvalidInput(f"no campaign {key!r} in workspace {workspace!r} (campaigns: {keys})")

    def _set_status(self, key: str, status: str) -> None:
        client = self._client
        self.require(key)
        set_status(client.store, client.ws, key, status, client.clock())

    def _plans(self, definitions: Definitions) -> Plans:
        sources, problems = _read(definitions)
        plans: builtins.list[ApplyPlan] = []
        try:
            client = self._client  # its own allow-list: the one its webhook channel sends with
            plans = plan_sources(
                sources, client.store, client.ws, webhook_allow=client.config.webhook_allow
            )
        except InvalidInput as exc:
            problems += exc.problems
        if problems:
            raise InvalidInput(problems, what="campaigns (nothing was stored)")
        return [(source, plan) for (source, _), plan in zip(sources, plans, strict=True)]


def _read(definitions: Definitions) -> tuple[list[tuple[str, Campaign]], list[Problem]]:
    """Each definition parsed, with its source; the problems of those that do not parse."""
    if isinstance(definitions, str | Path | Mapping | Campaign):
        definitions = [definitions]
    sources: list[tuple[str, Campaign]] = []
    problems: list[Problem] = []
    for index, item in enumerate(definitions):
        if isinstance(item, Campaign):
            sources.append((f"[{index}]", item))
            continue
        if isinstance(item, Mapping):
            labelled: list[tuple[str, Path | Mapping[str, Any]]] = [(f"[{index}]", item)]
        else:
            path = Path(item)
            files = campaign_files([path])
            if not files:
                suffixes = ", ".join(f"*{s}" for s in CAMPAIGN_SUFFIXES)
                problems.append(
                    Problem(str(path), f"no campaign files ({suffixes}) in this folder")
                )
            labelled = [(str(file), file) for file in files]
        for source, given in labelled:
            try:
                campaign = (
                    read_campaign(given) if isinstance(given, Path) else parse_campaign(given)
                )
            except InvalidInput as exc:
                problems += at_source(source, exc)
            else:
                sources.append((source, campaign))
    if not sources and not problems:
        problems.append(Problem("", "no campaign definitions given"))
    return sources, problems
