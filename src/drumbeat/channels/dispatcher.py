"""The dispatcher: claim due outbox rows, check suppression again, render, send through the
channel, record the outcome. Transient failures retry with exponential backoff and jitter,
counted in real seconds whatever the store's clock does; after `send_attempts` a row is
`dead`; permanent failures are `failed` with the reason.

Two clocks: the store's (virtual under `advance`) says which rows are due; the real one
(`clock`, time.time unless a test gives another) runs leases and retries. A claim's lease
is kept while it is sent (`leases.py`), and its results are recorded only for the rows it
still holds (their fence).
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial

from drumbeat import metrics
from drumbeat.channels.base import Channel, Message, Outcome, Result
from drumbeat.channels.keys import SigningKeys
from drumbeat.channels.leases import LeaseKeeper
from drumbeat.channels.registry import load_channels
from drumbeat.channels.render import render, user_context
from drumbeat.channels.tokens import unsubscribe_token
from drumbeat.config import Settings
from drumbeat.model.attributes import AttrType
from drumbeat.model.user import User
from drumbeat.store import Store
from drumbeat.store.outbox import OutboxRow, SendResult


def backoff(dedupe_key: str, attempts: int, first: float, most: float) -> float:
    """Real seconds before attempt `attempts + 1`: doubling from `first`, capped at `most`,
    with ±20% jitter derived from the message (rows that failed together spread out)."""
    delay = min(most, first * 2 ** max(0, attempts - 1))
    digest = hashlib.sha256(f"{dedupe_key}:{attempts}".encode()).digest()
    jitter = int.from_bytes(digest[:4], "big") / 2**32 * 0.4 - 0.2
    return float(delay * (1 + jitter))


@dataclass
class DispatchReport:
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, status: str, n: int = 1) -> None:
        self.counts[status] += n

    def merge(self, other: DispatchReport) -> None:
        for status, n in other.counts.items():
            self.add(status, n)


def _note_missing(
    results: list[SendResult], rows: Mapping[int, OutboxRow], missing: Mapping[int, set[str]]
) -> list[SendResult]:
    """A message sent with values its user lacks (written empty) is counted per name, and
    says so in its row (`drumbeat outbox` shows it in the error column)."""
    noted = []
    for result in results:
        names = sorted(missing.get(result.id, ()))
        if result.status == "sent" and names:
            row = rows[result.id]
            for name in names:
                metrics.TEMPLATE_MISSING.labels(row.campaign_key, row.step_id, name).inc()
            result = replace(result, error=f"sent without {', '.join(names)} (written empty)")
        noted.append(result)
    return noted


class Dispatcher:
    def __init__(
        self,
        store: Store,
        config: Settings,
        channels: Mapping[str, Channel] | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.config = config
        self.keys = SigningKeys(config, store)
        self.channels = channels if channels is not None else load_channels(config, store)
        self.clock = clock  # real time: leases and retries
        self._last_claim: dict[str, float] = {}
        self._workspaces: dict[int, tuple[dict[str, AttrType], str]] = {}

    def dispatch(self, now: float) -> DispatchReport:
        """Send everything due at `now` (within each channel's rate limit). Rows of a claim
        that another claim took over are counted `stale`: their results were not recorded."""
        report = DispatchReport()
        lease = self.config.send_lease
        self._workspaces.clear()  # attribute types may have changed since the last
        for channel in [None] if not self.config.rate_limits else sorted(self.channels):
            while rows := self._claim(channel, now, lease):
                with (
                    metrics.timed("stage.dispatch", len(rows)),
                    LeaseKeeper(self.store, rows, lease, self.clock) as keeper,
                ):
                    results = self._send(rows, keeper)
                # retried after a lost connection: the fence writes each result once
                record = partial(self.store.record_results, results, now)
                recorded = self.store.retrying(record, "recording sends")
                dropped = recorded + len(rows) - len(results)
                for result in results:
                    report.add(result.status)
                if dropped:
                    report.add("stale", dropped)
                if channel is not None and channel in self.config.rate_limits:
                    break  # this round's allowance is spent
        return report

    def settle(self, now: float) -> DispatchReport:
        """The end of `advance`: wait (real time) for the retries due within
        `advance_retry_wait` seconds and send them; later ones wait for the next run."""
        report = DispatchReport()
        while (at := self.store.next_retry(now)) is not None:
            wait = at - self.clock()
            if wait > self.config.advance_retry_wait:
                break
            time.sleep(max(0.0, wait))
            sent = self.dispatch(now)
            if not sent.counts:
                break  # nothing this dispatcher can claim (another one holds it)
            report.merge(sent)
        return report

    def _claim(self, channel: str | None, now: float, lease: float) -> list[OutboxRow]:
        """Claim the next rows, again if the connection is lost: rows claimed unseen come
        back when their lease runs out."""
        limit = self._allowance(channel, now)
        return self.store.retrying(
            lambda: self.store.claim_messages(now, self.clock(), limit, lease, channel),
            "claiming messages",
        )

    def _allowance(self, channel: str | None, now: float) -> int:
        rate = self.config.rate_limits.get(channel or "")
        if rate is None:
            return self.store.batch_size
        elapsed = max(1.0, now - self._last_claim.get(channel or "", now - 1.0))
        self._last_claim[channel or ""] = now
        return max(1, min(self.store.batch_size, int(rate * elapsed)))

    def _send(self, rows: Sequence[OutboxRow], keeper: LeaseKeeper) -> list[SendResult]:
        by_workspace: dict[int, list[OutboxRow]] = defaultdict(list)
        for row in rows:
            by_workspace[row.workspace_id].append(row)
        results: list[SendResult] = []
        for ws, part in by_workspace.items():
            results += self._send_workspace(ws, part, keeper)
        return results

    def _send_workspace(
        self, ws: int, rows: Sequence[OutboxRow], keeper: LeaseKeeper
    ) -> list[SendResult]:
        if ws not in self._workspaces:  # read once a dispatch, not once a claim
            self._workspaces[ws] = self.store.retrying(
                lambda: (self.store.attribute_types(ws), self.store.workspace_name(ws)),
                "reading the workspace",
            )
        types, name = self._workspaces[ws]
        users = self.store.retrying(
            lambda: self.store.load_users(ws, sorted({row.user_id for row in rows})),
            "reading the recipients",
        )
        results: list[SendResult] = []
        ready: dict[str, list[tuple[OutboxRow, Message]]] = defaultdict(list)
        missing: dict[int, set[str]] = defaultdict(set)  # row id → names written empty
        for row in rows:
            user = users.get(row.user_id)
            if user is None or user.unsubscribed:  # suppression, checked again at send time
                results.append(row_failed(row, "suppressed: unsubscribed"))
            elif row.channel not in self.channels:
                known = ", ".join(sorted(self.channels))
                results.append(row_failed(row, f"no channel {row.channel!r} (known: {known})"))
            else:
                try:
                    message = self._message(row, user, types, name, missing[row.id])
                    ready[row.channel].append((row, message))
                except Exception as exc:  # a template that cannot render never will
                    results.append(row_failed(row, f"template: {exc}"))
        for channel, pairs in ready.items():
            held = [(row, message) for row, message in pairs if keeper.holds(row.id)]
            results += self._deliver(self.channels[channel], held)
        return _note_missing(results, {row.id: row for row in rows}, missing)

    def _message(
        self,
        row: OutboxRow,
        user: User,
        types: dict[str, AttrType],
        workspace: str,
        missing: set[str],
    ) -> Message:
        payload = row.payload
        token = unsubscribe_token(self.keys(workspace), workspace, user.user_id)
        context = {
            "user": user_context(user, types),
            "campaign": {"key": row.campaign_key},
            "unsubscribe_url": f"{self.config.public_url}/unsubscribe/{token}",
        }
        html = bool(payload.get("html"))
        data = dict(payload.get("data") or {})
        if payload.get("url"):
            data["url"] = payload["url"]
        return Message(
            row.dedupe_key,
            workspace,
            row.campaign_key,
            row.step_id,
            user.user_id,
            user.email,
            render(payload.get("subject") or "", context, missing=missing),
            render(payload.get("body") or "", context, html=html, missing=missing),
            html,
            data,
        )

    def _deliver(
        self, channel: Channel, pairs: list[tuple[OutboxRow, Message]]
    ) -> list[SendResult]:
        """Send the rows still held (another claim sends the ones taken over)."""
        try:
            outcomes = channel.send_batch([message for _, message in pairs])
        except Exception as exc:  # the channel's own trouble: every message tries again
            outcomes = [Result.retry(f"{type(exc).__name__}: {exc}")] * len(pairs)
        return [
            self._result(row, outcome) for (row, _), outcome in zip(pairs, outcomes, strict=True)
        ]

    def _result(self, row: OutboxRow, outcome: Result) -> SendResult:
        if outcome.outcome is Outcome.SENT:
            return SendResult(row.id, row.fence, "sent", provider_id=outcome.provider_id)
        if outcome.outcome is Outcome.FAILED:
            return row_failed(row, outcome.error)
        if row.attempts >= self.config.send_attempts:
            return SendResult(row.id, row.fence, "dead", error=outcome.error)
        config = self.config
        delay = backoff(row.dedupe_key, row.attempts, config.retry_after, config.retry_max)
        return SendResult(
            row.id, row.fence, "pending", retry_at=self.clock() + delay, error=outcome.error
        )

    def close(self) -> None:
        from drumbeat.channels.registry import close_channels

        close_channels(self.channels)


def row_failed(row: OutboxRow, error: str | None) -> SendResult:
    return SendResult(row.id, row.fence, "failed", error=error)
