"""A big users file checked by child processes (`python -m drumbeat.ingest.check_processes`),
each its share of the users, while the importing process only writes: the check is most of
an import's Python, and one process runs it on one core.

Each child reads the whole file (parsing a line is cheap next to checking it), checks the
calls of its share (`checking.share_of`: every call of a user in one child, so a user's
calls keep their order) and answers in JSON lines on stdout: a line per batch, staged
(`staging`: `{"values", "patches", "shapes", "calls", "read"}`; the importing process hands
the values to the database as they are); `{"bad"}` at its first bad line (unless bad lines
are skipped: the importer stops writing), then its outcome (`{"problems", "rejects",
"learned"}`) or `{"error"}`. Its command is one JSON line on stdin. Nothing is pickled.

A child fixes the type of an attribute it sees first in its share; if two children fixed one
differently, the file disagrees with itself and `TypesDisagree` sends the import back to one
process, which says at which line.
"""

from __future__ import annotations

import base64
import contextlib
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from drumbeat.cyclic_gc import no_cyclic_gc
from drumbeat.errors import Problem
from drumbeat.ingest.checking import check_file
from drumbeat.ingest.staging import Staged, stage
from drumbeat.ingest.validate import Validator
from drumbeat.model.attributes import AttrType


class TypesDisagree(Exception):
    """Two check processes fixed an attribute's type differently."""


@dataclass(frozen=True)
class CheckCommand:
    """What a check process is told (beside its share)."""

    path: str
    fmt: str
    types: dict[str, AttrType]  # known before the file
    now: float
    size: int  # calls a batch
    skip_invalid: bool


@dataclass
class Outcome:
    """The children's answers merged: calls handed over, problems and rejected lines in line
    order, and the attribute types first seen in the file."""

    calls: int = 0
    problems: list[Problem] = field(default_factory=list)
    rejects: list[bytes] = field(default_factory=list)
    new_types: dict[str, AttrType] = field(default_factory=dict)


def check_in_processes(
    command: CheckCommand,
    processes: int,
    put: Callable[[int, Staged], None],
    progress: Callable[[int], None] | None,
) -> Outcome:
    """Check the file in `processes` children; `put(share, staged)` is called with each
    batch (from a thread a child); returns once every child has answered."""
    children = [_start(command, share, processes) for share in range(processes)]
    answers: list[dict[str, Any]] = [{} for _ in children]
    errors: list[BaseException] = []
    failed = threading.Event()  # a child found a bad line: nothing will be imported

    def read(share: int) -> None:
        done = 0
        try:
            for line in _pipe(children[share].stdout):
                message = orjson.loads(line)
                if "error" in message:
                    raise RuntimeError(f"check process {share}: {message['error']}")
                if "bad" in message:
                    failed.set()
                elif "values" not in message:
                    answers[share].update(message)  # the outcome
                elif not failed.is_set():
                    put(share, Staged.from_message(message))
                    answers[share]["calls"] = answers[share].get("calls", 0) + message["calls"]
                read = message.get("read", done)  # bytes of the file this child has read
                if share == 0 and progress is not None and read > done:
                    progress(read - done)
                    done = read
            if "learned" not in answers[share]:
                code = children[share].wait()
                raise RuntimeError(f"check process {share} exited with code {code}")
        except BaseException as exc:  # raised again by the importing thread
            errors.append(exc)
            for child in children:  # the import fails: the others need not finish
                child.kill()

    readers = [threading.Thread(target=read, args=(share,)) for share in range(processes)]
    try:
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join()
    finally:
        for child in children:
            _stop(child)
    if errors:
        raise errors[0]
    return _merge(answers)


def _merge(answers: list[dict[str, Any]]) -> Outcome:
    outcome = Outcome(calls=sum(answer.get("calls", 0) for answer in answers))
    for answer in answers:
        for name, (kind, _line) in answer["learned"].items():
            if outcome.new_types.setdefault(name, AttrType(kind)) != kind:
                raise TypesDisagree(name)
    problems = sorted((p for answer in answers for p in answer["problems"]), key=_by_line)
    outcome.problems = [Problem(where, message) for _number, where, message in problems]
    rejects = sorted((r for answer in answers for r in answer["rejects"]), key=_by_line)
    outcome.rejects = [base64.b64decode(raw) for _number, raw in rejects]
    return outcome


def _by_line(item: list[Any]) -> int:
    return int(item[0])


def _start(command: CheckCommand, share: int, shares: int) -> subprocess.Popen[bytes]:
    child = subprocess.Popen(
        [sys.executable, "-m", "drumbeat.ingest.check_processes"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    stdin = _pipe(child.stdin)
    stdin.write(orjson.dumps({**asdict(command), "share": share, "shares": shares}) + b"\n")
    stdin.close()
    return child


def _stop(child: subprocess.Popen[bytes]) -> None:
    """Reap a child; one still running (the import failed) is killed."""
    if child.poll() is None:
        child.kill()
    child.wait()
    with contextlib.suppress(BrokenPipeError):
        _pipe(child.stdout).close()


def _pipe(stream: IO[bytes] | None) -> IO[bytes]:
    assert stream is not None  # every child is started with both pipes
    return stream


def main() -> None:
    """A check process: the command on stdin, batches and the outcome on stdout."""
    command = orjson.loads(sys.stdin.buffer.readline())
    out = sys.stdout.buffer
    try:
        validator = Validator(
            {name: AttrType(kind) for name, kind in command["types"].items()},
            now=command["now"],
            text_values=command["fmt"] == "csv",
        )
        problems: list[tuple[int, str, str]] = []
        rejects: list[tuple[int, str]] = []
        first_seen: dict[str, int] = {}

        def bad(number: int, raw: bytes, found: list[Problem]) -> None:
            if command["skip_invalid"]:
                rejects.append((number, base64.b64encode(raw).decode()))
            elif not problems:  # nothing will be imported: the importer can stop writing
                out.write(orjson.dumps({"bad": number}) + b"\n")
                out.flush()
            problems.extend((number, p.where, p.message) for p in found)

        read = 0
        with no_cyclic_gc():
            for batch, read in check_file(
                Path(command["path"]),
                command["fmt"],
                validator,
                size=command["size"],
                skip_invalid=command["skip_invalid"],
                bad=bad,
                share=command["share"],
                shares=command["shares"],
                first_seen=first_seen,
            ):
                if batch is not None:
                    message = stage(batch.rows, command["now"]).message()
                    message.update(calls=batch.size, read=read)
                    out.write(orjson.dumps(message) + b"\n")
        learned = {name: (kind, first_seen[name]) for name, kind in validator.new_types.items()}
        answer = {"read": read, "problems": problems, "rejects": rejects, "learned": learned}
    except Exception as exc:  # the importing process raises it
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    out.write(orjson.dumps(answer) + b"\n")
    out.flush()


if __name__ == "__main__":
    main()
