"""Sending a claim's rows, workspace by workspace: suppression checked again, each message
rendered (`compose.py`) and sent through its channel if the claim still holds its row, and
the outcome made a `SendResult` for the dispatcher to record. Transient failures retry with
exponential backoff and jitter, counted in real seconds whatever the store's clock does;
after `send_attempts` a row is `dead`; permanent failures are `failed` with the reason. A
provider's `Retry-After` (`Result.retry_after`) is the least a retry waits."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence

from drumbeat.channels.base import Channel, Message, Outcome, Result
from drumbeat.channels.compose import compose, note_missing
from drumbeat.channels.keys import SigningKeys
from drumbeat.channels.leases import LeaseKeeper
from drumbeat.config import Settings
from drumbeat.model.attributes import AttrType
from drumbeat.model.user import User
from drumbeat.store import Store
from drumbeat.store.outbox_claims import OutboxRow
from drumbeat.store.sends import SendResult

EMAIL = "email"  # the channel that sends to the user's address, which may be suppressed


def backoff(
    dedupe_key: str, attempts: int, first: float, most: float, asked: float | None = None
) -> float:
    """Real seconds before attempt `attempts + 1`: doubling from `first`, capped at `most`,
    with ±20% jitter derived from the message (rows that failed together spread out). A
    provider's `Retry-After` (`asked`) is a floor: never sooner, and up to 20% later so that
    the messages it turned away together do not all come back at one instant; it too is
    capped at `most`."""
    delay = min(most, first * 2 ** max(0, attempts - 1))
    digest = hashlib.sha256(f"{dedupe_key}:{attempts}".encode()).digest()
    spread = int.from_bytes(digest[:4], "big") / 2**32 * 0.4  # 0 … 0.4
    jittered = delay * (0.8 + spread)
    if asked is None:
        return float(jittered)
    return float(min(most, max(jittered, asked * (1 + spread / 2))))


class Sender:
    """A dispatcher's sending: its channels, the key that signs their links and bodies, and
    each workspace's attribute types and name, read once a dispatch."""

    def __init__(
        self,
        store: Store,
        config: Settings,
        channels: Mapping[str, Channel],
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.config = config
        self.keys = SigningKeys(config, store)
        self.channels = channels
        self.clock = clock  # real time: retries
        self._workspaces: dict[int, tuple[dict[str, AttrType], str]] = {}

    def forget_workspaces(self) -> None:
        """At a dispatch's start: attribute types may have changed since the last."""
        self._workspaces.clear()

    def send(self, rows: Sequence[OutboxRow], keeper: LeaseKeeper) -> list[SendResult]:
        """What became of each of a claim's rows, sent workspace by workspace: only those
        the claim still holds (`keeper`) go out."""
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
        users = {row.user_id: row.user for row in rows if row.user is not None}
        blocked = self._suppressed_addresses(ws, rows, users)
        results: list[SendResult] = []
        ready: dict[str, list[tuple[OutboxRow, Message]]] = defaultdict(list)
        missing: dict[int, set[str]] = defaultdict(set)  # row id → names written empty
        for row in rows:
            user = users.get(row.user_id)
            if user is None or user.unsubscribed:  # suppression, checked again at send time
                results.append(row_failed(row, "suppressed: unsubscribed"))
            elif row.channel == EMAIL and user.email in blocked:
                why = "suppressed: the address was erased, bounced or complained"
                results.append(row_failed(row, why))
            elif row.channel not in self.channels:
                known = ", ".join(sorted(self.channels))
                results.append(row_failed(row, f"no channel {row.channel!r} (known: {known})"))
            else:
                try:
                    message = compose(
                        row, user, types, name, missing[row.id], self.keys, self.config.public_url
                    )
                    ready[row.channel].append((row, message))
                except Exception as exc:  # a template that cannot render never will
                    results.append(row_failed(row, f"template: {exc}"))
        for channel, pairs in ready.items():
            held = [(row, message) for row, message in pairs if keeper.holds(row.id)]
            results += self._deliver(self.channels[channel], held)
        return note_missing(results, {row.id: row for row in rows}, missing)

    def _suppressed_addresses(
        self, ws: int, rows: Sequence[OutboxRow], users: Mapping[str, User]
    ) -> set[str]:
        """The addresses of the email rows' recipients that are suppressed (erased users'
        addresses, hard bounces, complaints: `store/erasure.py`), in one query a batch."""
        addresses = {
            user.email
            for row in rows
            if row.channel == EMAIL and (user := users.get(row.user_id)) and user.email
        }
        if not addresses:
            return set()
        return self.store.retrying(
            lambda: self.store.suppressed(ws, addresses), "reading suppressed addresses"
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
        delay = backoff(
            row.dedupe_key, row.attempts, config.retry_after, config.retry_max, outcome.retry_after
        )
        return SendResult(
            row.id, row.fence, "pending", retry_at=self.clock() + delay, error=outcome.error
        )


def row_failed(row: OutboxRow, error: str | None) -> SendResult:
    return SendResult(row.id, row.fence, "failed", error=error)
