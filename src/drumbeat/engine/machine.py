"""The membership state machine: pure, batch in, decisions out.

`decide(program, subjects, now)` returns, for each user whose membership changes, the new
membership and the messages it sends. Order of checks for an active member: the goal
(exit `converted`), the audience when `when_no_longer_matching` (exit `left_audience`), the
inactivity limit (exit `inactive`), then the step it waits at. Instantaneous steps (send,
branch, split) run until a wait or the end. No I/O and no clock: `now` is given.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from drumbeat.engine.member import END, START, Decision, Member, OutMessage, State, Subject
from drumbeat.engine.program import (
    BranchNode,
    Program,
    SendNode,
    SplitNode,
    WaitNode,
    WaitUntilNode,
)


def decide(program: Program, subjects: Iterable[Subject], now: float) -> list[Decision]:
    decisions = []
    for subject in subjects:
        decision = decide_one(program, subject, now)
        if decision is not None:
            decisions.append(decision)
    return decisions


def decide_one(program: Program, s: Subject, now: float) -> Decision | None:
    member = s.member
    if member is not None and member.state is State.ACTIVE:
        return _advance(program, s, member, now)
    if s.may_enter and _may_enter(program, s, now):
        return _enter(program, s, now)
    return None


def dedupe_key(program: Program, step_id: str, user_id: str, entry: int) -> str:
    return f"{program.workspace}/{program.key}/{step_id}/{user_id}/{entry}"


def _may_enter(program: Program, s: Subject, now: float) -> bool:
    previous = s.member
    if previous is not None:
        reentry = program.campaign.entry.reentry
        if reentry == "never" or previous.exited_at is None:
            return False
        if now < previous.exited_at + float(reentry):
            return False
    if not program.audience(s.user, s.facts, now):
        return False
    # someone who already meets the goal has nothing to be moved towards
    return program.goal is None or not program.goal(s.user, s.facts, now)


def _enter(program: Program, s: Subject, now: float) -> Decision:
    entry = s.member.entry_count + 1 if s.member is not None else 1
    member = Member(s.user.user_id, State.ACTIVE, START, entry, now, now)
    return _run(program, s, member, program.first, now, entered=True)


def _exit(
    member: Member, state: State, now: float, reason: str, *, attributed: bool = False
) -> Decision:
    return Decision(
        replace(
            member,
            state=state,
            exited_at=now,
            exit_reason=reason,
            next_due_at=None,
            attributed=attributed,
        )
    )


def _advance(program: Program, s: Subject, member: Member, now: float) -> Decision | None:
    campaign = program.campaign
    if program.goal is not None and program.goal(s.user, s.facts, now):
        window = campaign.goal.window if campaign.goal else 0.0
        attributed = member.last_sent_at is not None and now - member.last_sent_at <= window
        return _exit(member, State.CONVERTED, now, "goal", attributed=attributed)
    if campaign.exit.when_no_longer_matching and not program.audience(s.user, s.facts, now):
        return _exit(member, State.LEFT_AUDIENCE, now, "left audience")
    if member.position == END:
        deadline = _goal_deadline(program, member)
        if now >= deadline:
            return _exit(member, State.COMPLETED, now, "goal window over")
        return _not_yet(member, deadline)
    if now >= _inactive_at(program, member):
        return _exit(member, State.INACTIVE, now, "inactive")
    node = program.nodes.get(member.position)
    if node is None:  # a new version dropped this step and the member was not moved
        # (a worker still on the old version committed after `apply`). The reason is fixed
        # text: `exit_reason` is varchar(32), and a step id may be up to 200 characters.
        return _exit(member, State.COMPLETED, now, "step removed")
    if isinstance(node, WaitNode):
        ends = member.step_started_at + node.seconds
        if now < ends:
            return _not_yet(member, min(ends, _inactive_at(program, member)))
        return _run(program, s, member, node.next, now)
    if isinstance(node, WaitUntilNode):
        timeout = member.step_started_at + node.timeout
        if now < timeout and not node.holds(s.user, s.facts, now):
            return _not_yet(member, min(timeout, _inactive_at(program, member)))
        return _run(program, s, member, node.next, now)
    return _run(program, s, member, node.id, now)  # a send held by the window or the cap


def _run(
    program: Program,
    s: Subject,
    member: Member,
    start: str | None,
    now: float,
    *,
    entered: bool = False,
) -> Decision:
    """Run instantaneous steps from `start` until a wait, a held send or the end.

    Hot: it runs for every entering user, so it keeps what changes in locals and builds the
    new membership once (no dataclass `replace` per step)."""
    messages: list[OutMessage] = []
    sends = list(s.recent_sends)
    last_sent, last_step = member.last_sent_at, member.last_step
    current = start
    while current is not None:
        node = program.nodes[current]
        if isinstance(node, SendNode):
            hold = _held_until(program, s, sends, now)
            if hold is not None:
                return _settle(
                    program, member, node.id, now, hold, messages, entered, last_sent, last_step
                )
            if not s.user.unsubscribed:  # never sent to; checked again at dispatch
                key = dedupe_key(program, node.id, member.user_id, member.entry_count)
                messages.append(
                    OutMessage(
                        key,
                        node.id,
                        member.user_id,
                        member.entry_count,
                        node.channel,
                        node.payload,
                        now,
                    )
                )
                last_sent, last_step = now, node.id
                sends.append(now)
            current = node.next
        elif isinstance(node, BranchNode):
            current = node.then if node.holds(s.user, s.facts, now) else node.otherwise
        elif isinstance(node, SplitNode):
            seed = f"{program.workspace}:{program.key}:{node.id}:{member.user_id}"
            current = node.pick(seed)[1]
        elif isinstance(node, WaitNode):
            return _settle(
                program,
                member,
                node.id,
                now,
                now + node.seconds,
                messages,
                entered,
                last_sent,
                last_step,
            )
        else:
            if node.holds(s.user, s.facts, now):
                current = node.next
                continue
            return _settle(
                program,
                member,
                node.id,
                now,
                now + node.timeout,
                messages,
                entered,
                last_sent,
                last_step,
            )
    since = last_sent or member.entered_at
    if program.goal is None:
        done = Member(
            member.user_id,
            State.COMPLETED,
            END,
            member.entry_count,
            member.entered_at,
            now,
            None,
            last_sent,
            last_step,
            now,
            "completed",
            member.attributed,
        )
        return Decision(done, tuple(messages), entered)
    window = program.campaign.goal.window if program.campaign.goal else 0.0
    # The goal window after the last message may be over already (a long wait came last):
    # then complete now, as `_advance` would, rather than stay `active` until the next tick.
    over = now >= since + window
    at_end = Member(
        member.user_id,
        State.COMPLETED if over else State.ACTIVE,
        END,
        member.entry_count,
        member.entered_at,
        now,
        None if over else since + window,
        last_sent,
        last_step,
        now if over else None,
        "goal window over" if over else None,
        member.attributed,
    )
    return Decision(at_end, tuple(messages), entered)


def _not_yet(member: Member, due: float) -> Decision | None:
    """Nothing to do before `due`: no change when the member is already due then, else a
    decision that only moves `next_due_at`. A new version can change a wait's length (or the
    goal window, or `inactive_after`) under members waiting at it; without this, a member
    whose stored due time has passed would be planned again on every tick until `due`."""
    if member.next_due_at == due:
        return None
    return Decision(replace(member, next_due_at=due))


def _held_until(program: Program, s: Subject, sends: list[float], now: float) -> float | None:
    """When a send that cannot go now may go: the send window, then the frequency cap."""
    if program.window is not None:
        opens = program.window.opens_at(now, s.user.timezone)
        if opens is not None:
            return opens
    return program.cap.free_at(sends, now) if program.cap is not None else None


def _settle(
    program: Program,
    member: Member,
    position: str,
    now: float,
    due: float,
    messages: list[OutMessage],
    entered: bool,
    last_sent: float | None,
    last_step: str | None,
) -> Decision:
    """The member waits at `position` until `due`, or its inactivity limit if sooner."""
    started = member.step_started_at if member.position == position else now
    inactive = (last_sent or member.entered_at) + program.campaign.exit.inactive_after
    waiting = Member(
        member.user_id,
        State.ACTIVE,
        position,
        member.entry_count,
        member.entered_at,
        started,
        min(due, inactive),
        last_sent,
        last_step,
        None,
        None,
        member.attributed,
    )
    return Decision(waiting, tuple(messages), entered)


def _inactive_at(program: Program, member: Member) -> float:
    return (member.last_sent_at or member.entered_at) + program.campaign.exit.inactive_after


def _goal_deadline(program: Program, member: Member) -> float:
    window = program.campaign.goal.window if program.campaign.goal else 0.0
    return (member.last_sent_at or member.entered_at) + window
