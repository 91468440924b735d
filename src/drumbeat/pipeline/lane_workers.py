"""Each work lane on executor workers of its own, so that slow work never delays fast work.

`drain` runs every lane, one after the other, and returns when all are empty (`advance`: a
tick's batches are all done before the tick is recorded done, on the virtual clock).
`drain_fast` runs the fast lane and hands the others to a thread each that drains them on
its own (`run`): a slow lane's backlog is worked while the next ticks plan and run the fast
lane. Its batches stay in the store meanwhile (pending or running, holding their users:
`Store.busy_users`), so a tick recorded done before they are loses nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext

from drumbeat.choices import Lane
from drumbeat.config import Settings
from drumbeat.pipeline.executors import Executor, make_executor
from drumbeat.pipeline.lane_gate import LaneGate
from drumbeat.pipeline.programs import Programs
from drumbeat.pipeline.worker import BatchReport
from drumbeat.store import Store


class Background:
    """A thread draining one lane whenever asked (`kick`), with the newest time asked for;
    what it ran is taken with `take`, and a drain's failure is raised by the next `kick`."""

    def __init__(self, executor: Executor, lane: str) -> None:
        self.executor = executor
        self.lane = lane
        self._changed = threading.Condition()
        self._wanted: float | None = None
        self._stopping = False
        self._reports: list[BatchReport] = []
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name=f"drumbeat-{lane}", daemon=True)
        self._thread.start()

    def kick(self, now: float) -> None:
        with self._changed:
            failure, self._failure = self._failure, None
            self._wanted = now
            self._changed.notify()
        if failure is not None:
            raise failure

    def take(self) -> list[BatchReport]:
        with self._changed:
            reports, self._reports = self._reports, []
        return reports

    def stop(self) -> None:
        """Finish the drain under way (and one asked for), then end the thread."""
        with self._changed:
            self._stopping = True
            self._changed.notify()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            with self._changed:
                while self._wanted is None and not self._stopping:
                    self._changed.wait()
                if self._wanted is None:
                    return
                now, self._wanted = self._wanted, None
            try:
                reports = self.executor.drain(self.lane, now)
            except BaseException as exc:  # raised in the ticking thread, by the next kick
                with self._changed:
                    self._failure = exc
                continue
            with self._changed:
                self._reports.extend(reports)


class LaneWorkers:
    """An executor per lane: `workers[lane]` processes (in-process when 1), those of the
    lanes other than fast in the background (they start no batch while the fast lane
    drains, `lane_gate.py`, and give way to it for CPU and the SQLite write lock:
    `executors/child.py`); with a broker,
    one CeleryExecutor for all, whose lanes are worked by `drumbeat worker` fleets of their
    own (so the lanes are kept apart there, and a drain here only waits)."""

    def __init__(
        self,
        store: Store,
        programs: Programs,
        workers: Mapping[str, int],
        settings: Settings | None = None,
    ) -> None:
        self.remote = settings is not None and settings.broker_url is not None
        self.gate: LaneGate | None = None
        if self.remote:
            shared = make_executor(store, programs, 1, settings)
            self.executors = dict.fromkeys(workers, shared)
        else:
            self.gate = gate = LaneGate.make()
            self.executors = {
                lane: make_executor(
                    store, programs, n, settings, gate=None if lane == Lane.FAST else gate
                )
                for lane, n in workers.items()
            }
        self._background: dict[str, Background] = {}

    def drain(self, now: float) -> list[BatchReport]:
        """Every lane on its executor, the fast one first, until each is empty: one after
        the other, so that what a tick does does not hang on which lane commits first (a
        frequency cap shared by campaigns in both lanes); time is virtual there."""
        return [r for lane, ex in self.executors.items() for r in ex.drain(lane, now)]

    def fast_first(self) -> AbstractContextManager[object]:
        """Held for a tick's planning and fast drain (`Runner.tick` in `run`): the other
        lanes' workers start no new batch meanwhile, and those in hand finish while the tick
        plans (`lane_gate.py`). Nothing with a broker (each lane has workers of its own)."""
        return nullcontext() if self.gate is None else self.gate.held()

    def drain_fast(self, now: float) -> list[BatchReport]:
        """The fast lane here, until it is empty; the other lanes go on in their threads.
        Returns the fast lane's reports and those of the other lanes' drains since. With a
        broker every lane is waited for here (the workers keep them apart)."""
        if self.remote:
            return self.drain(now)
        for lane, executor in self.executors.items():
            if lane != Lane.FAST:
                if lane not in self._background:
                    self._background[lane] = Background(executor, lane)
                self._background[lane].kick(now)
        reports = self.executors[Lane.FAST].drain(Lane.FAST, now)
        return reports + [r for b in self._background.values() for r in b.take()]

    def close(self) -> None:
        for background in self._background.values():
            background.stop()
        self._background = {}
        for executor in {id(e): e for e in self.executors.values()}.values():
            executor.close()
        if self.gate is not None:
            self.gate.remove()
            self.gate = None
