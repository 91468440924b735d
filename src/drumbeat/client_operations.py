"""`Drumbeat`'s running and looking at the work: messages in the outbox, batches and
campaign members, dead messages and batches put back to work, and `advance`, which moves the
store's virtual clock running every tick and dispatch due on the way."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from drumbeat.choices import BatchStatus, MemberState, MessageStatus, choice
from drumbeat.client_state import ClientState
from drumbeat.errors import InvalidInput
from drumbeat.inputs import interval, timestamp
from drumbeat.model.attributes import format_timestamp
from drumbeat.pipeline.clock import StoreClock
from drumbeat.views import Advanced, Batch, Membership, Message, batch_of, message_of


class Operations(ClientState):
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
        return [message_of(r) for r in rows]

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
        return [message_of(r) for r in rows]

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
        return [batch_of(r) for r in rows]

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
        return [batch_of(r) for r in rows]

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


def _named_or_all(ids: Sequence[int] | None, all_dead: bool, nouns: str) -> None:
    """What a retry takes: ids, or all dead ones; not neither, not both."""
    if all_dead == bool(ids):
        raise InvalidInput(f"name the {nouns} to retry by id, or all dead ones, not both")
