"""The Python API: `Drumbeat(...)` identifies users, tracks events and previews audiences."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drumbeat.choices import BatchStatus, MemberState, MessageStatus, choice
from drumbeat.config import Settings, settings
from drumbeat.errors import InvalidInput, Problem
from drumbeat.ingest.held_types import HeldTypes, stale
from drumbeat.ingest.validate import HAS_NUL, NUL, Validator, shown
from drumbeat.inputs import interval, timestamp
from drumbeat.model.attributes import AttrType, format_timestamp
from drumbeat.model.records import EventRecord, UserRecord
from drumbeat.model.user import User
from drumbeat.pipeline.clock import StoreClock
from drumbeat.store import Store, open_configured
from drumbeat.store.core import chunks
from drumbeat.views import Advanced, Batch, Membership, Message, UserDetail

if TYPE_CHECKING:
    from drumbeat.campaign_api import Campaigns
    from drumbeat.pipeline.events import EventPath

Clock = Callable[[], float]


def load_rule(source: Any) -> Any:
    """A rule from a parsed document, a Rule, or a YAML/JSON file path."""
    from drumbeat.model.rules import RuleNode, parse_rule

    if isinstance(source, RuleNode):
        return source
    if isinstance(source, str | Path):
        from drumbeat.model.documents import load_document

        return parse_rule(load_document(Path(source)))
    return parse_rule(source)


class Drumbeat:
    """One workspace of one store. `clock` returns epoch seconds; by default the store's
    virtual clock if one is set, else the real one."""

    def __init__(
        self,
        database_url: str | None = None,
        *,
        workspace: str | None = None,
        batch_size: int | None = None,
        config: Settings | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config or settings(
            database_url=database_url, workspace=workspace, batch_size=batch_size
        )
        self.store: Store = open_configured(self.config)
        # the store's virtual clock when one is set (`drumbeat advance`), else real time
        self.clock: Clock = clock or StoreClock(self.store)
        self.ws = self.store.workspace_id(self.config.workspace, now=self.clock())

    @classmethod
    def attached(cls, store: Store, ws: int, config: Settings, clock: Clock) -> Drumbeat:
        """A client of workspace `ws` on a store already open (the HTTP API makes one a
        request on its server's store); closing it would close that store: don't."""
        client = cls.__new__(cls)
        client.config = config.model_copy(update={"workspace": store.workspace_name(ws)})
        client.store, client.clock, client.ws = store, clock, ws
        return client

    def close(self) -> None:
        self.store.close()

    @cached_property
    def event_path(self) -> EventPath:
        """Runs the engine for the users of an identify or track call right after it is
        written (`pipeline/events.py`); calls naming more than DRUMBEAT_EVENT_PATH_USERS
        users wait for the next tick. (The engine is loaded then: `import users` needs none.)"""
        from drumbeat.pipeline.events import EventPath

        return EventPath(self.store, max_users=self.config.event_path_users)

    @cached_property
    def _types(self) -> HeldTypes:
        return HeldTypes(self.store, self.config.api_key_cache_seconds)

    @cached_property
    def campaigns(self) -> Campaigns:
        """Campaign definitions: check, apply, list, show, pause, resume, archive."""
        from drumbeat.campaign_api import Campaigns  # templates and YAML: on first use

        return Campaigns(self)

    def __enter__(self) -> Drumbeat:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ---- ingestion ------------------------------------------------------------------------

    def identify(self, user_id: str, traits: Mapping[str, Any] | None = None) -> None:
        self.identify_many([{"user_id": user_id, "traits": dict(traits or {})}])

    def identify_many(self, calls: Iterable[Mapping[str, Any]]) -> int:
        """Validate every call, then write in batches; one bad call and nothing is written.
        The attribute types are held a moment (`ingest/held_types.py`)."""
        now, given = self.clock(), list(calls)
        return self._types.checking(
            self.ws, lambda types, fresh: self._identify(given, types, fresh, now)
        )

    def _identify(
        self, calls: list[Mapping[str, Any]], types: dict[str, AttrType], fresh: bool, now: float
    ) -> int:
        validator = Validator(types, now=now)
        try:
            records: list[UserRecord] = _validated(calls, validator.user)
        except InvalidInput:
            if validator.new_types and not fresh:
                raise stale() from None
            raise
        step = self.event_path.step(self.ws, records, (), now)  # in the last part's commit
        parts = list(chunks(records, self.store.batch_size))
        written = 0
        for index, part in enumerate(parts):
            new_types = validator.new_types if index == 0 else None
            then = step if index == len(parts) - 1 else None
            written += self.store.write_users(self.ws, part, now, new_types=new_types, then=then)
        if validator.new_types:
            self._types.forget(self.ws)  # this client sees the types it fixed at once
        return written

    def track(
        self,
        user_id: str,
        event: str,
        properties: Mapping[str, Any] | None = None,
        *,
        timestamp: Any = None,
        message_id: str | None = None,
    ) -> None:
        self.track_many(
            [
                {
                    "user_id": user_id,
                    "event": event,
                    "timestamp": timestamp,
                    "properties": dict(properties or {}),
                    "message_id": message_id,
                }
            ]
        )

    def track_many(self, calls: Iterable[Mapping[str, Any]]) -> int:
        """Validate every call, then append in batches; returns how many events were new."""
        now = self.clock()
        validator = Validator({}, now=now)
        records: list[EventRecord] = _validated(calls, validator.event)
        step = self.event_path.step(self.ws, (), records, now)  # in the last part's commit
        parts = list(chunks(records, self.store.batch_size))
        return sum(
            self.store.write_events(self.ws, part, now, then=step if part is parts[-1] else None)
            for part in parts
        )

    def declare_attribute(self, name: str, kind: str | AttrType) -> None:
        if NUL in name:  # as in a call's traits
            raise InvalidInput(Problem(shown(name), f"the name {HAS_NUL}"))
        try:
            attr_type = AttrType(kind)
        except ValueError:
            choices = ", ".join(t.value for t in AttrType)
            raise InvalidInput(f"type {kind!r}: use one of {choices}") from None
        self.store.declare_attribute(self.ws, name, attr_type)
        self._types.forget(self.ws)

    # ---- reading --------------------------------------------------------------------------

    def users(self, user_ids: Iterable[str]) -> dict[str, User]:
        return self.store.load_users(self.ws, list(user_ids))

    def inbox(
        self, user_id: str, *, unread_only: bool = False, limit: int = 50
    ) -> list[dict[str, Any]]:
        """The user's in-app messages, newest first (what a client app would fetch)."""
        from drumbeat.channels.in_app import inbox_messages

        return inbox_messages(self.store, self.ws, user_id, unread_only=unread_only, limit=limit)

    def mark_read(self, user_id: str, message_ids: list[int]) -> int:
        from drumbeat.channels.in_app import mark_read

        return mark_read(self.store, self.ws, user_id, message_ids, self.clock())

    def audience_count(self, rule: Any) -> int:
        return self.store.count_audience(self.ws, load_rule(rule), self.clock())

    def audience_sample(self, rule: Any, n: int = 10) -> list[User]:
        ids = self.store.select_audience(self.ws, load_rule(rule), self.clock(), limit=n)
        found = self.users(ids)
        return [found[user_id] for user_id in ids if user_id in found]

    def outbox(
        self,
        campaign: str | None = None,
        status: str | None = None,
        *,
        user_id: str | None = None,
        ids: Sequence[int] | None = None,
        after: int | None = None,
        limit: int | None = 100,
    ) -> list[Message]:
        """Messages, oldest first: of one campaign, in one status (pending, sending, sent,
        failed, dead), to one user, among `ids`, with an id above `after` (the last of a
        page), at most `limit` (None: all)."""
        choice(MessageStatus, status, "status")
        if campaign is not None:
            self.campaigns.require(campaign)
        rows = self.store.outbox_rows(
            self.ws,
            campaign=campaign,
            status=status,
            user_id=user_id,
            ids=ids,
            after_id=after,
            limit=limit,
        )
        return [_message(r) for r in rows]

    def retry_messages(
        self,
        ids: Sequence[int] | None = None,
        *,
        all_dead: bool = False,
        campaign: str | None = None,
        dry_run: bool = False,
    ) -> list[Message]:
        """Put dead messages back to pending, due now, their attempts and error cleared:
        those of `ids`, or with `all_dead` every dead message of the workspace (of
        `campaign` if given); the next dispatch sends them. An id that is not a dead message
        of this workspace refuses them all (InvalidInput naming each). Returns the messages
        retried (with `dry_run`, those that would be, nothing changed) as they were."""
        _named_or_all(ids, all_dead, "messages")
        if campaign is not None:
            if not all_dead:
                raise InvalidInput("campaign picks among all dead messages: give it with all_dead")
            self.campaigns.require(campaign)
        rows = self.store.retry_messages(
            self.ws, None if all_dead else ids, self.clock(), campaign=campaign, dry_run=dry_run
        )
        return [_message(r) for r in rows]

    def user(self, user_id: str, *, messages: int = 20) -> UserDetail | None:
        """The user's fields, attributes, campaigns and `messages` latest messages; None if
        the workspace has no such user."""
        user = self.users([user_id]).get(user_id)
        if user is None:
            return None
        memberships = [
            Membership(
                user_id,
                m["state"],
                m["position"],
                m["entry_count"],
                m["entered_at"],
                m["exited_at"],
                m["exit_reason"],
                m["campaign_key"],
            )
            for m in self.store.user_memberships(self.ws, user_id)
        ]
        latest = self.store.recent_messages(self.ws, user_id, messages)
        return UserDetail(
            user.user_id,
            user.email,
            user.timezone,
            user.unsubscribed,
            user.created_at,
            user.last_seen_at,
            dict(user.attributes),
            memberships,
            [_message(r) for r in latest],
        )

    def erase_user(self, user_id: str) -> bool:
        """Delete the user with their events, memberships, messages and inbox, keeping only
        the sha256 of their address so it is never mailed again; False if there was none."""
        return self.store.erase_user(self.ws, user_id, self.clock())

    def suppress(self, addresses: Iterable[str], reason: str) -> int:
        """Never mail these addresses again (`reason`: erased, bounce or complaint); how
        many were not suppressed already. Only their sha256 is kept."""
        from drumbeat.store.erasure import REASONS

        if reason not in REASONS:
            raise InvalidInput(f"reason {reason!r}: use one of {', '.join(REASONS)}")
        return self.store.suppress(self.ws, addresses, reason, self.clock())

    def members(
        self, campaign: str, state: str | None = None, *, limit: int | None = 100
    ) -> list[Membership]:
        """A campaign's members by user id: in one state (active, converted, left_audience,
        inactive, completed), at most `limit` (None: all)."""
        choice(MemberState, state, "state")
        self.campaigns.require(campaign)
        return [
            Membership(
                m.user_id,
                str(m.state),
                m.position,
                m.entry_count,
                m.entered_at,
                m.exited_at,
                m.exit_reason,
            )
            for m in self.store.members(self.ws, campaign, state=state, limit=limit)
        ]

    def unsubscribe_user(self, token: str) -> str:
        """The user an unsubscribe link's token names (what a web app serving
        `{public_url}/unsubscribe/{token}` calls); InvalidToken unless it was signed with
        this workspace's key for this workspace."""
        from drumbeat.channels.keys import SigningKeys
        from drumbeat.channels.tokens import InvalidToken, verify_unsubscribe_token

        key = SigningKeys(self.config, self.store)(self.config.workspace)
        workspace, user_id = verify_unsubscribe_token(key, token)
        if workspace != self.config.workspace:  # a key set for several workspaces
            raise InvalidToken(f"unsubscribe token of workspace {workspace!r}")
        return user_id

    def unsubscribe_url(self, user_id: str) -> str:
        """The user's unsubscribe link, as emails carry it: `{public_url}/unsubscribe/{token}`
        (for a "manage emails" page of the product, say)."""
        from drumbeat.channels.keys import SigningKeys
        from drumbeat.channels.tokens import unsubscribe_token

        key = SigningKeys(self.config, self.store)(self.config.workspace)
        token = unsubscribe_token(key, self.config.workspace, user_id)
        return f"{self.config.public_url.rstrip('/')}/unsubscribe/{token}"

    def inbox_token(self, user_id: str, ttl: str | float = "1d") -> str:
        """A token that opens `user_id`'s inbox over the HTTP API (`Authorization: Bearer …`
        on `/v1/inbox/{user_id}`) for `ttl` (`1d`, `12h` or seconds) of real time. Mint it in
        the product's backend for the signed-in user and hand it to their browser."""
        import time

        from drumbeat.channels.keys import SigningKeys
        from drumbeat.channels.tokens import inbox_token

        if not user_id or NUL in user_id:
            raise InvalidInput(Problem("user_id", "a non-empty id without NUL characters"))
        expires = int(time.time() + interval(ttl, "ttl"))
        key = SigningKeys(self.config, self.store)(self.config.workspace)
        return inbox_token(key, self.config.workspace, user_id, expires)

    def batches(
        self,
        status: str | None = None,
        campaign: str | None = None,
        *,
        ids: Sequence[int] | None = None,
        after: int | None = None,
        limit: int | None = None,
    ) -> list[Batch]:
        """The workspace's batches, oldest first: in one status (pending, running, done,
        skipped, dead), of one campaign, among `ids`, with an id above `after` (the last of
        a page), at most `limit` (None: all)."""
        choice(BatchStatus, status, "status")
        if campaign is not None:
            self.campaigns.require(campaign)
        rows = self.store.batch_rows(
            self.ws, status=status, campaign=campaign, ids=ids, after_id=after, limit=limit
        )
        return [_batch(r) for r in rows]

    def retry_batches(
        self, ids: Sequence[int] | None = None, *, all_dead: bool = False, dry_run: bool = False
    ) -> list[Batch]:
        """Put dead batches back to pending, their attempts reset: those of `ids`, or with
        `all_dead` every dead batch of the workspace; the next tick runs them, and until then
        their users stay out of planning. An id that is not a dead batch of this workspace
        refuses them all (InvalidInput naming each). Returns the batches retried (with
        `dry_run`, those that would be, nothing changed) as they were."""
        _named_or_all(ids, all_dead, "batches")
        rows = self.store.retry_batches(self.ws, None if all_dead else ids, dry_run=dry_run)
        return [_batch(r) for r in rows]

    # ---- running --------------------------------------------------------------------------

    def advance(
        self,
        to: str | float,
        every: str | float = "1h",
        *,
        workers: int = 1,
        on_tick: Callable[[float, float], None] | None = None,
        send: bool = True,
    ) -> Advanced:
        """Move the store's virtual clock to `to` (ISO-8601 or epoch seconds) in steps of
        `every` (`1h`, `15m` or seconds), running every tick and dispatch due on the way.
        `on_tick(start, end)` is called before each tick (a progress bar's hook). Not `send`:
        the ticks' messages stay queued (`outbox`), for a later `advance` or `run` to send."""
        from drumbeat.pipeline.runner import Runner

        target = timestamp(to, "to")
        step = interval(every, "every")
        clock = self.clock if isinstance(self.clock, StoreClock) else StoreClock(self.store)
        if clock.virtual and target < clock():
            now = format_timestamp(clock())
            raise InvalidInput(
                f"to: {format_timestamp(target)} is before the virtual clock ({now})"
            )
        runner = Runner(self.store, self.config, clock, workers=workers)
        try:
            reports = runner.advance(target, step, between=on_tick, send=send)
        finally:
            runner.close()
        done = Advanced(target, ticks=len(reports))
        for report in reports:
            done.entered += report.entered
            done.queued += report.queued
            for status, n in report.sent.items():
                done.sent[status] = done.sent.get(status, 0) + n
        return done


def _message(row: Mapping[str, Any]) -> Message:
    return Message(
        row["id"],
        row["campaign_key"],
        row["step_id"],
        row["user_id"],
        row["channel"],
        row["status"],
        row["attempts"],
        row["created_at"],
        row["sent_at"],
        row["last_error"],
    )


def _batch(row: Mapping[str, Any]) -> Batch:
    return Batch(
        row["id"],
        row["campaign_key"],
        row["lane"],
        row["kind"],
        list(row["user_ids"]),
        row["status"],
        row["attempts"],
        row["created_at"],
        row["last_error"],
    )


def _validated(calls: Iterable[Mapping[str, Any]], check: Callable[..., Any]) -> list[Any]:
    records, problems = [], []
    for index, call in enumerate(calls):
        try:
            records.append(check(call, f"[{index}]."))
        except InvalidInput as exc:
            problems.extend(exc.problems)
    if problems:
        raise InvalidInput(problems, what="calls (nothing was written)")
    return records


def _named_or_all(ids: Sequence[int] | None, all_dead: bool, nouns: str) -> None:
    """What a retry takes: ids, or all dead ones; not neither, not both."""
    if all_dead == bool(ids):
        raise InvalidInput(f"name the {nouns} to retry by id, or all dead ones, not both")
