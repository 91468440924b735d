"""Who holds a claim: `host:pid:token` names written with a batch's or an outbox row's lease,
so that a claim whose process is known gone (on this host) is let go of at once instead of
after its lease: a killed run resumes without waiting minutes of real time."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterable
from pathlib import Path

PROC = Path("/proc")  # Linux's view of the processes: says whether one is a zombie


def host_owner() -> str:
    """The start of the owner names of the claims made on this host."""
    return f"{socket.gethostname()}:"


def process_owner(pid: int) -> str:
    """The start of the owner names of the claims made by process `pid` on this host."""
    return f"{host_owner()}{pid}:"


def claim_owner() -> str:
    """A new owner name for a claim: this process's, and a token of its own, so that a
    claim tried again after a lost connection knows the batch it may have taken already."""
    return f"{process_owner(os.getpid())}{uuid.uuid4().hex[:16]}"


def gone_processes(owners: Iterable[str]) -> set[int]:
    """The pids, among these owner names of this host's claims, of processes that are gone.
    A pid taken again since by another process looks alive: its claim's lease runs out."""
    pids = {int(owner.rsplit(":", 2)[1]) for owner in owners}
    return {pid for pid in pids if not _alive(pid)}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # no signal: asks whether the process exists (a zombie does)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's
        pass
    return not _ended(pid)


def _ended(pid: int) -> bool:
    """Whether process `pid`, which exists, has ended as far as its claims go: a zombie
    (ended, waiting to be reaped) has, unless its parent is ours (init aside). A worker of
    a run killed whole is reparented to init, which may take a second or more to reap it
    (a container's does): many ticks of `advance`. A worker that died under our own
    executor is let go of by that executor, which knows how it ended
    (`ProcessExecutor._release`: a batch that kills every worker that takes it ends dead).
    Without /proc (not Linux), none has."""
    try:
        stat = (PROC / str(pid) / "stat").read_bytes()
    except FileNotFoundError:  # reaped since (or no /proc at all)
        return PROC.is_dir()
    except OSError:
        return False
    state, parent = stat.rpartition(b")")[2].split()[:2]  # after "(command)", which may hold ")"
    return state in (b"Z", b"X") and (int(parent) != os.getppid() or int(parent) == 1)
