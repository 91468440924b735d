"""One tick of the whole flow (plan → work → dispatch), and the loops that repeat it:
`advance` on the virtual clock (deterministic), `run` on the real clock (until stopped).

Both record each tick in the store (`StoreClock.begin_tick`, `end_tick`): done only once
its work is done. `advance` first finishes a tick a killed run left open, at the time it
was for; on the real clock the next tick, later, covers everything that one would have."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Protocol

from drumbeat import metrics
from drumbeat.channels.dispatcher import Dispatcher, DispatchReport
from drumbeat.choices import Lane
from drumbeat.config import Settings
from drumbeat.cyclic_gc import freeze_startup
from drumbeat.errors import InvalidInput
from drumbeat.pipeline.clock import StoreClock
from drumbeat.pipeline.executors import Executor
from drumbeat.pipeline.governor import Governor
from drumbeat.pipeline.lane_workers import LaneWorkers
from drumbeat.pipeline.planner import plan_all
from drumbeat.pipeline.programs import Programs
from drumbeat.store import Store

log = logging.getLogger(__name__)
STATISTICS_EVERY = 300.0  # real seconds between refreshes of the planner's table statistics


@dataclass
class TickReport:
    now: float
    entered: int = 0
    advanced: int = 0
    batches: int = 0
    queued: int = 0
    sent: dict[str, int] = field(default_factory=dict)


class Stop(Protocol):
    """What `run` asks between ticks (a threading.Event is one)."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class Runner:
    def __init__(
        self,
        store: Store,
        config: Settings,
        clock: StoreClock | None = None,
        *,
        workers: int = 1,
        dispatcher: Dispatcher | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock or StoreClock(store)
        self.programs = Programs(store)
        self.governor = Governor(store, config)
        self.lanes = LaneWorkers(
            store, self.programs, {Lane.FAST: workers, Lane.SLOW: config.slow_workers}, config
        )
        self.dispatcher = dispatcher or Dispatcher(store, config)
        self._statistics_at = -math.inf
        freeze_startup()  # the process's start-up is over

    @property
    def executor(self) -> Executor:
        """The fast lane's executor (with a broker, every lane's: a CeleryExecutor)."""
        return self.lanes.executors[Lane.FAST]

    def tick(self, now: float, *, whole: bool = True, send: bool = True) -> TickReport:
        """Plan every active campaign, run every batch, send everything due, at `now`.
        Not `whole`: the slow lane's batches go on in its thread after the tick (`run`).
        Not `send`: the messages stay queued (`advance --no-send`)."""
        sending = self.dispatcher.sending_meanwhile(now) if send else nullcontext(DispatchReport())
        with (
            sending as sent,
            nullcontext() if whole else self.lanes.fast_first(),
        ):
            report = self.plan(now)
            batches = self.lanes.drain(now) if whole else self.lanes.drain_fast(now)
        for batch in batches:
            report.entered += batch.entered
            report.advanced += batch.changed - batch.entered
            report.queued += batch.messages
        report.sent = dict(sent.counts)
        return report

    def plan(self, now: float) -> TickReport:
        """Plan every active campaign at `now` (the planner's statistics refreshed now and
        then): the batches are written, for the executors to run."""
        report = TickReport(now)
        with metrics.timed(metrics.PLAN_STAGE):
            self._plan(report, now)
        return report

    def _plan(self, report: TickReport, now: float) -> None:
        if time.monotonic() - self._statistics_at > STATISTICS_EVERY:
            self.store.retrying(self.store.refresh_statistics, "refreshing statistics")
            self._statistics_at = time.monotonic()
        for plan in plan_all(
            self.store,
            self.programs,
            now,
            full_pass_every=self.config.full_pass_every,
            governor=self.governor,
        ):
            report.batches += plan.batches

    def recorded_tick(
        self, now: float, *, whole: bool = True, real_time: bool = False, send: bool = True
    ) -> TickReport:
        """`tick`, recorded in the store as begun, then as done once its work is done (the
        slow lane's too if `whole`; else it is in the store, pending or running). A tick
        on `real_time` (`run`'s) never moves a virtual clock (`StoreClock.begin_tick`)."""
        self.clock.begin_tick(now, real_time=real_time)
        with metrics.timed(metrics.TICK_STAGE):
            report = self.tick(now, whole=whole, send=send)
        self.clock.end_tick(now)
        return report

    def advance(
        self,
        to: float,
        every: float,
        *,
        between: Callable[[float, float], None] | None = None,
        send: bool = True,
    ) -> list[TickReport]:
        """Move the virtual clock to `to` in steps of `every`, ticking at each step, after
        finishing the tick a killed run left open (at its own time: the clock is there); then
        wait for the retries due within `advance_retry_wait` real seconds and send them.
        `between(start, end)` runs before each tick (the demo replays user activity there).
        Not `send`: the ticks send nothing, and what they queue stays queued, due, for a
        later run to send."""
        if not self.clock.virtual:
            self.clock.set(time.time())
        self._release_orphans()
        reports = []
        if (left_open := self.clock.open_tick()) is not None:
            reports.append(self.recorded_tick(left_open, send=send))
        now = self.clock()
        while now < to:
            step = min(now + every, to)
            if between is not None:
                between(now, step)
            reports.append(self.recorded_tick(step, send=send))
            now = step
        if reports and send:  # retries count real time: wait for the near ones, not leave them
            settled = self.dispatcher.settle(now).counts
            for status, n in settled.items():
                reports[-1].sent[status] = reports[-1].sent.get(status, 0) + n
        return reports

    def run(self, interval: float, *, stop: Stop) -> None:
        """Tick on the real clock every `interval` seconds until `stop` is set; the wait
        between ticks ends as soon as it is (a tick under way is finished first). Refuses
        a store on a virtual clock, and stops if one is set meanwhile (`drumbeat clock
        --set`): its ticks would move that clock to real time."""
        self._release_orphans()
        while not stop.is_set():
            if self.clock.virtual:
                raise InvalidInput(
                    "this store runs on a virtual clock: `drumbeat clock --real` first"
                )
            started = time.time()
            report = self.recorded_tick(started, whole=False, real_time=True)
            log.info("tick: %s", report)
            stop.wait(max(0.0, interval - (time.time() - started)))

    def _release_orphans(self) -> None:
        """A run started again after a kill takes up at once the messages its dead
        predecessor was sending (its batches are let go of at each drain)."""
        if released := self.store.retrying(
            self.store.release_orphaned_messages, "releasing the messages of a gone process"
        ):
            log.warning("took up %d messages a gone process was sending", released)

    def close(self) -> None:
        self.lanes.close()
        self.dispatcher.close()
