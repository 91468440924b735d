"""A campaign's results: messages by step and status, members by state, exits by reason,
and conversion per path of its first split, which holds the control group when it has one
(`Drumbeat.campaigns.stats`, the demo's report, `GET /v1/campaigns/{key}/stats`)."""

from __future__ import annotations

from collections import defaultdict

from drumbeat.engine.program import SplitNode, compile_program
from drumbeat.model.campaign import parse_campaign
from drumbeat.store import Store
from drumbeat.store.campaigns import CampaignRow
from drumbeat.views import CampaignStats, PathConversion


def split_conversion(
    store: Store, ws: int, row: CampaignRow
) -> tuple[str | None, dict[str, PathConversion]]:
    """The first split's id and, per path, its members and their conversions: each member's
    path is the split's stable pick for them, whether they reached the split yet or not."""
    program = compile_program(
        parse_campaign(row.definition),
        store.attribute_types(ws),
        workspace=store.workspace_name(ws),
    )
    split = next((n for n in program.nodes.values() if isinstance(n, SplitNode)), None)
    if split is None:
        return None, {}
    entered: dict[str, int] = defaultdict(int)
    converted: dict[str, int] = defaultdict(int)
    for member in store.members(ws, row.key):
        path, _ = split.pick(f"{program.workspace}:{row.key}:{split.id}:{member.user_id}")
        entered[path] += 1
        converted[path] += member.state == "converted"
    paths = {
        path: PathConversion(entered[path], converted[path], converted[path] / entered[path])
        for path in sorted(entered)
    }
    return split.id, paths


def messages_by_step(store: Store, ws: int, key: str) -> dict[str, dict[str, int]]:
    """step → status → messages of the campaign."""
    messages: dict[str, dict[str, int]] = {}
    for (campaign, step, status), n in sorted(store.outbox_counts(ws).items()):
        if campaign == key:
            messages.setdefault(step, {})[status] = n
    return messages


def campaign_stats(store: Store, ws: int, row: CampaignRow) -> CampaignStats:
    split, paths = split_conversion(store, ws, row)
    return CampaignStats(
        row.key,
        messages_by_step(store, ws, row.key),
        store.member_counts(ws, row.key),
        store.exit_counts(ws, row.key),
        split,
        paths,
    )
