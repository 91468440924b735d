"""`/metrics` for Prometheus: `drumbeat run --metrics-port` (and any long-running command
that starts worker processes: call `serve_metrics` before they start).

prometheus_client's multiprocess mode: this process and every process started after the
call (they inherit PROMETHEUS_MULTIPROC_DIR; a forking pool's children too) keep their
instruments in files of one directory, and the server adds them up at each scrape. With
PROMETHEUS_MULTIPROC_DIR unset, a new temporary directory is used and removed at `close`;
one that is set is used as it is (empty it before a start, as prometheus_client says)."""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from typing import Any

from drumbeat.errors import BadSetting, InvalidInput
from drumbeat.metrics import MULTIPROCESS_DIRECTORY


@dataclass
class MetricsServer:
    port: int
    directory: str
    server: Any
    thread: threading.Thread
    made: bool  # the directory is ours: removed at close

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
        if self.made:
            shutil.rmtree(self.directory, ignore_errors=True)
            os.environ.pop(MULTIPROCESS_DIRECTORY, None)


def serve_metrics(port: int, host: str = "127.0.0.1") -> MetricsServer:
    """Serve `/metrics` on `host:port` from a thread until `close`. Call it before this
    process times anything: instruments already used keep their values in memory."""
    directory = os.environ.get(MULTIPROCESS_DIRECTORY)
    made = not directory
    if not directory:
        directory = tempfile.mkdtemp(prefix="drumbeat-metrics-")
        os.environ[MULTIPROCESS_DIRECTORY] = directory
    elif not os.path.isdir(directory):
        raise BadSetting(MULTIPROCESS_DIRECTORY, f"no directory {directory}")
    from prometheus_client import CollectorRegistry, start_http_server, values

    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call] # read again: the variable is set now
    registry = CollectorRegistry()
    registry.register(FilledFiles(directory))
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        if made:
            shutil.rmtree(directory, ignore_errors=True)
            os.environ.pop(MULTIPROCESS_DIRECTORY, None)
        raise InvalidInput(
            f"--metrics-port {port}: cannot listen on {host}: {exc.strerror}"
        ) from None
    return MetricsServer(port, directory, server, thread, made)


@dataclass(frozen=True)  # hashable: a registry keys its collectors
class FilledFiles:
    """prometheus_client's multiprocess collector, leaving out the files with nothing in them
    yet: a process creates its file before it sizes it, and a scrape that met one in that
    moment failed whole, as did every scrape after a process killed in it left it empty
    (prometheus/client_python#1199)."""

    directory: str

    def collect(self) -> Any:
        from prometheus_client.multiprocess import MultiProcessCollector

        files = [path for path in glob.glob(os.path.join(self.directory, "*.db")) if filled(path)]
        return MultiProcessCollector.merge(files, accumulate=True)  # type: ignore[no-untyped-call]


def filled(path: str) -> bool:
    try:
        return os.path.getsize(path) > 0
    except FileNotFoundError:  # its process ended and the file went with it
        return False
