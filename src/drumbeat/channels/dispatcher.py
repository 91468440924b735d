"""The dispatcher: claim due outbox rows (each with its recipient, read by the claim), check
suppression again, render, send through the channel, record the outcome. The checks, the
rendering and the sending of a claim's rows, and what becomes of each (retried with backoff,
dead, failed), are `sending.py`'s; the claims, their pacing and their results' recording
are here.

A channel without a rate limit is sent claim after claim (`batch_size` rows each) until none
is due, the store's work on a thread of its own while a claim's calls wait: the next claim
taken as a claim's calls go out, its results recorded while the next one's go out. A
rate-limited channel (`DRUMBEAT_RATE_LIMITS`) claims a second's messages at a time and sends
them as the limiter shared by every process of the store grants them (`rate_limits.py`), for
up to `tick_interval` seconds a dispatch.

Two clocks: the store's (virtual under `advance`) says which rows are due; the real one
(`clock`, time.time unless a test gives another) runs leases, retries and rate limits. A
claim's lease is kept while it is sent (`leases.py`), and its results are recorded only for
the rows it still holds (their fence).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from math import ceil

from drumbeat import metrics
from drumbeat.channels.base import Channel
from drumbeat.channels.leases import LeaseKeeper
from drumbeat.channels.rate_limits import open_limiter
from drumbeat.channels.registry import load_channels
from drumbeat.channels.sending import Sender
from drumbeat.config import Settings
from drumbeat.cyclic_gc import no_cyclic_gc
from drumbeat.store import Store
from drumbeat.store.outbox_claims import OutboxRow
from drumbeat.store.sends import SendResult

# Real seconds `sending_meanwhile` waits, when it has caught up, before claiming again: a
# batch of 1,000 commits in 30-100 ms, maybe in another process, so it is not told of one.
CAUGHT_UP_WAIT = 0.05


@dataclass
class DispatchReport:
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, status: str, n: int = 1) -> None:
        self.counts[status] += n

    def merge(self, other: DispatchReport) -> None:
        for status, n in other.counts.items():
            self.add(status, n)


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
        self.channels = channels if channels is not None else load_channels(config, store)
        self.clock = clock  # real time: leases, retries and rate limits
        self.limiter = open_limiter(config, store)  # shared by every process of the store
        self.sender = Sender(store, config, self.channels, clock)

    def dispatch(self, now: float) -> DispatchReport:
        """Send everything due at `now`, each rate-limited channel within its limit (for up to
        `tick_interval` real seconds: what is left waits for the next dispatch). Rows of a
        claim that another claim took over are counted `stale`: their results were not
        recorded."""
        report = DispatchReport()
        self.sender.forget_workspaces()
        limits = self.config.rate_limits
        deadline = self.clock() + self.config.tick_interval
        for channel in [None] if not limits else sorted(self.channels):
            rate = limits.get(channel or "")
            if rate is None:
                self._stream(channel, now, report)
                continue
            size = min(self.store.batch_size, ceil(rate))  # a second's sending at a time
            while rows := self._round(channel, now, size, report, rate):
                if len(rows) < size or self.clock() >= deadline:
                    break
        return report

    @contextmanager
    def sending_meanwhile(self, now: float) -> Iterator[DispatchReport]:
        """`dispatch(now)` spread over the block: on PostgreSQL, while it runs (a tick's
        batches being worked), what is due is sent on a thread of its own as the batches
        commit it, claim after claim, so that the server's work for the one overlaps the
        other's (and the Python of each); then, after the block, the rest, as `dispatch`.
        The report counts both. After the block only: on SQLite (one writer at a time, in
        this process: nothing to overlap, and the thread's Python costs CPU), and with rate
        limits (their pacing spans a dispatch). With one worker, `advance` at 200,000 users
        took 16-18 s instead of 20-21 s (`drumbeat bench loader`)."""
        report = DispatchReport()
        if self.store.dialect != "postgresql" or self.config.rate_limits:
            yield report
            report.merge(self.dispatch(now))
            return
        self.sender.forget_workspaces()  # as `dispatch` does
        done = threading.Event()

        def send() -> None:
            while not done.is_set():
                if not self._stream(None, now, report):
                    done.wait(CAUGHT_UP_WAIT)

        with ThreadPoolExecutor(1, thread_name_prefix="sending") as sender:
            sending = sender.submit(send)
            try:
                yield report
            finally:
                done.set()
            sending.result()
        report.merge(self.dispatch(now))

    def _stream(self, channel: str | None, now: float, report: DispatchReport) -> int:
        """Claims of `batch_size` rows until none is left, their store work on a thread of
        its own, done while the calls wait on their channel instead of between them: the
        next claim is taken (and its lease kept from then on) as a claim's calls go out, and
        a claim's results are recorded while the next one's go out. Each claim is timed as
        `stage.dispatch` (its items the rows) from its calls' start to its results handed
        over. A claim's rows, messages and results are containers without cycles, kept alive
        together: the cyclic collector is off while they are sent (it would walk them over
        and over). Returns the rows claimed."""
        size, claimed_rows = self.store.batch_size, 0
        # named after the thread it works for (`sending_0-outbox_0`): a count of statements
        # can tell the claims of `sending_meanwhile`, which follow the wall clock, apart
        with ThreadPoolExecutor(
            1, thread_name_prefix=f"{threading.current_thread().name}-outbox"
        ) as store_work:
            claimed = store_work.submit(self._claim_kept, channel, now, size)
            recorded: Future[None] | None = None
            try:
                while claim := claimed.result():
                    rows, keeper = claim
                    claimed_rows += len(rows)
                    started = time.perf_counter()
                    claimed = store_work.submit(self._claim_kept, channel, now, size)
                    try:
                        with no_cyclic_gc():
                            results = self.sender.send(rows, keeper)
                    finally:
                        keeper.stop()
                    if recorded is not None:
                        recorded.result()
                    recorded = store_work.submit(self._record, rows, results, now, report)
                    metrics.observe("stage.dispatch", time.perf_counter() - started, len(rows))
            finally:  # a claim taken but not sent (an error above): its lease runs out
                with suppress(Exception):
                    if ahead := claimed.result():
                        ahead[1].stop()
                if recorded is not None:
                    recorded.result()
        return claimed_rows

    def _claim_kept(
        self, channel: str | None, now: float, size: int
    ) -> tuple[list[OutboxRow], LeaseKeeper] | None:
        """The next claim, its lease kept from now on; None when nothing is due."""
        if not (rows := self._claim(channel, now, size)):
            return None
        return rows, LeaseKeeper(self.store, rows, self.config.send_lease, self.clock).start()

    def _round(
        self, channel: str | None, now: float, size: int, report: DispatchReport, rate: float
    ) -> list[OutboxRow]:
        """A rate-limited channel's claim of up to `size` rows, sent as the limiter grants
        them and their results recorded: timed whole as `stage.dispatch`, the cyclic
        collector off meanwhile (see `_stream`); the rows."""
        started = time.perf_counter()
        with no_cyclic_gc():
            if rows := self._claim(channel, now, size):
                with LeaseKeeper(self.store, rows, self.config.send_lease, self.clock) as keeper:
                    results = []
                    for part in self._paced(rows, rate):
                        results += self.sender.send(part, keeper)
                self._record(rows, results, now, report)
                metrics.observe("stage.dispatch", time.perf_counter() - started, len(rows))
        return rows

    def _record(
        self, rows: list[OutboxRow], results: list[SendResult], now: float, report: DispatchReport
    ) -> None:
        """A claim's results, each written only where its row's fence is still the claim's;
        again after a lost connection (the fence writes each result once)."""
        record = partial(self.store.record_results, results, now)
        recorded = self.store.retrying(record, "recording sends")
        dropped = recorded + len(rows) - len(results)
        for status, n in Counter(result.status for result in results).items():
            report.add(status, n)
        if dropped:
            report.add("stale", dropped)

    def _paced(self, rows: list[OutboxRow], rate: float) -> Iterator[list[OutboxRow]]:
        """A rate-limited channel's claim (all its rows are that channel's) in parts as the
        limiter grants them, each given once the second it counts in has begun
        (`rate_limits.py`): rendered and sent then."""
        start = 0
        while start < len(rows):
            channel = rows[start].channel
            grant = self.limiter.acquire(channel, len(rows) - start, rate, self.clock())
            time.sleep(max(0.0, grant.at - self.clock()))
            yield rows[start : start + grant.granted]
            start += grant.granted

    def settle(self, now: float) -> DispatchReport:
        """The end of `advance`: wait (real time) for the retries due within
        `advance_retry_wait` seconds and send them; later ones wait for the next run."""
        report = DispatchReport()
        while (at := self._next_retry(now)) is not None:
            wait = at - self.clock()
            if wait > self.config.advance_retry_wait:
                break
            time.sleep(max(0.0, wait))
            sent = self.dispatch(now)
            if not sent.counts:
                break  # nothing this dispatcher can claim (another one holds it)
            report.merge(sent)
        return report

    def _next_retry(self, now: float) -> float | None:
        return self.store.retrying(lambda: self.store.next_retry(now), "looking for retries due")

    def _claim(self, channel: str | None, now: float, limit: int) -> list[OutboxRow]:
        """Claim the next rows, again if the connection is lost: rows claimed unseen come
        back when their lease runs out."""
        lease = self.config.send_lease
        return self.store.retrying(
            lambda: self.store.claim_messages(now, self.clock(), limit, lease, channel),
            "claiming messages",
        )

    def close(self) -> None:
        from drumbeat.channels.registry import close_channels

        close_channels(self.channels)
        self.limiter.close()
