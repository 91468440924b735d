"""The dispatcher: claim due outbox rows, check suppression again, render, send through the
channel, record the outcome. Transient failures retry with exponential backoff and jitter;
after `max_attempts` a row is `dead`; permanent failures are `failed` with the reason.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

from drumbeat import metrics
from drumbeat.channels.base import Channel, Message, Outcome, Result
from drumbeat.channels.registry import load_channels
from drumbeat.channels.render import render, user_context
from drumbeat.channels.tokens import unsubscribe_token
from drumbeat.config import Settings
from drumbeat.model.attributes import AttrType
from drumbeat.model.user import User
from drumbeat.store import Store
from drumbeat.store.outbox import OutboxRow, SendResult

MESSAGE_LEASE = 300.0
MAX_ATTEMPTS = 8
BACKOFF_BASE = 60.0
BACKOFF_MAX = 6 * 3600.0


def backoff(dedupe_key: str, attempts: int) -> float:
    """Seconds before attempt `attempts + 1`: doubling from a minute, capped at six hours,
    with ±20% jitter derived from the message (deterministic, so replays agree)."""
    delay = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** max(0, attempts - 1))
    digest = hashlib.sha256(f"{dedupe_key}:{attempts}".encode()).digest()
    jitter = int.from_bytes(digest[:4], "big") / 2**32 * 0.4 - 0.2
    return float(delay * (1 + jitter))


@dataclass
class DispatchReport:
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, status: str, n: int = 1) -> None:
        self.counts[status] += n


class Dispatcher:
    def __init__(
        self,
        store: Store,
        config: Settings,
        channels: Mapping[str, Channel] | None = None,
        *,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.store = store
        self.config = config
        self.channels = channels if channels is not None else load_channels(config, store)
        self.max_attempts = max_attempts
        self._last_claim: dict[str, float] = {}

    def dispatch(self, now: float) -> DispatchReport:
        """Send everything due at `now` (within each channel's rate limit)."""
        report = DispatchReport()
        for channel in [None] if not self.config.rate_limits else sorted(self.channels):
            while rows := self._claim(channel, now):
                with metrics.timed("stage.dispatch", len(rows)):
                    results = self._send(rows, now)
                    # the same outcomes written twice are written once
                    record = partial(self.store.record_results, results, now)
                    self.store.retrying(record, "recording sends")
                for result in results:
                    report.add(result.status)
                if channel is not None and channel in self.config.rate_limits:
                    break  # this round's allowance is spent
        return report

    def _claim(self, channel: str | None, now: float) -> list[OutboxRow]:
        """Claim the next rows, again if the connection is lost: rows claimed unseen come
        back when their lease runs out."""
        limit = self._allowance(channel, now)
        return self.store.retrying(
            lambda: self.store.claim_messages(now, limit, MESSAGE_LEASE, channel),
            "claiming messages",
        )

    def _allowance(self, channel: str | None, now: float) -> int:
        rate = self.config.rate_limits.get(channel or "")
        if rate is None:
            return self.store.batch_size
        elapsed = max(1.0, now - self._last_claim.get(channel or "", now - 1.0))
        self._last_claim[channel or ""] = now
        return max(1, min(self.store.batch_size, int(rate * elapsed)))

    def _send(self, rows: Sequence[OutboxRow], now: float) -> list[SendResult]:
        by_workspace: dict[int, list[OutboxRow]] = defaultdict(list)
        for row in rows:
            by_workspace[row.workspace_id].append(row)
        results: list[SendResult] = []
        for ws, part in by_workspace.items():
            results += self._send_workspace(ws, part, now)
        return results

    def _send_workspace(self, ws: int, rows: Sequence[OutboxRow], now: float) -> list[SendResult]:
        users, types, name = self.store.retrying(
            lambda: (
                self.store.load_users(ws, sorted({row.user_id for row in rows})),
                self.store.attribute_types(ws),
                self.store.workspace_name(ws),
            ),
            "reading the recipients",
        )
        results: list[SendResult] = []
        ready: dict[str, list[tuple[OutboxRow, Message]]] = defaultdict(list)
        for row in rows:
            user = users.get(row.user_id)
            if user is None or user.unsubscribed:  # suppression, checked again at send time
                results.append(SendResult(row.id, "failed", error="suppressed: unsubscribed"))
            elif row.channel not in self.channels:
                known = ", ".join(sorted(self.channels))
                results.append(
                    SendResult(
                        row.id, "failed", error=f"no channel {row.channel!r} (known: {known})"
                    )
                )
            else:
                try:
                    ready[row.channel].append((row, self._message(row, user, types, name)))
                except Exception as exc:  # a template that cannot render never will
                    results.append(SendResult(row.id, "failed", error=f"template: {exc}"))
        for channel, pairs in ready.items():
            results += self._deliver(self.channels[channel], pairs, now)
        return results

    def _message(
        self, row: OutboxRow, user: User, types: dict[str, AttrType], workspace: str
    ) -> Message:
        payload = row.payload
        token = unsubscribe_token(self.config.secret_key, workspace, user.user_id)
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
            render(payload.get("subject") or "", context),
            render(payload.get("body") or "", context, html=html),
            html,
            data,
        )

    def _deliver(
        self, channel: Channel, pairs: list[tuple[OutboxRow, Message]], now: float
    ) -> list[SendResult]:
        try:
            outcomes = channel.send_batch([message for _, message in pairs])
        except Exception as exc:  # the channel's own trouble: every message tries again
            outcomes = [Result.retry(f"{type(exc).__name__}: {exc}")] * len(pairs)
        return [
            self._result(row, outcome, now)
            for (row, _), outcome in zip(pairs, outcomes, strict=True)
        ]

    def _result(self, row: OutboxRow, outcome: Result, now: float) -> SendResult:
        if outcome.outcome is Outcome.SENT:
            return SendResult(row.id, "sent", provider_id=outcome.provider_id)
        if outcome.outcome is Outcome.FAILED:
            return SendResult(row.id, "failed", error=outcome.error)
        if row.attempts >= self.max_attempts:
            return SendResult(row.id, "dead", error=outcome.error)
        return SendResult(
            row.id,
            "pending",
            available_at=now + backoff(row.dedupe_key, row.attempts),
            error=outcome.error,
        )

    def close(self) -> None:
        from drumbeat.channels.registry import close_channels

        close_channels(self.channels)
