"""`drumbeat explain` as data: the pipeline as configured (store, cache, executor, channels
and their rate limits, logs and timings) and as it runs (schema revision, clock, active
campaigns, each lane's pending and running batches and its oldest waiting one's age).

Only what is configured is read: nothing is connected to but the store, no channel built."""

from __future__ import annotations

from typing import Any

from drumbeat.client import Drumbeat
from drumbeat.config import Settings


def explain(db: Drumbeat) -> dict[str, Any]:
    from drumbeat.pipeline.executors import shareable
    from drumbeat.pipeline.planner import DEFAULT_LANE
    from drumbeat.store import migrate

    config, store = db.config, db.store
    url = store.engine.url
    with store.engine.connect() as conn:
        revision = migrate.current(conn)
    now = db.clock()
    depths = store.lane_depths(db.ws)
    return {
        "store": {
            "kind": store.dialect,
            "url": url.render_as_string(hide_password=True),
            "schema": revision,
        },
        "cache": {"kind": "none"},
        "executor": _executor(config, store.dialect, shareable(store)),
        "clock": {"virtual": bool(getattr(db.clock, "virtual", False)), "now": now},
        "workspace": config.workspace,
        "active_campaigns": len(store.campaigns(db.ws, status="active")),
        "lanes": [
            {
                "lane": lane,
                "pending": pending,
                "running": running,
                "oldest_waiting_seconds": None if oldest is None else max(0.0, now - oldest),
            }
            for lane, (pending, running, oldest) in sorted(
                {DEFAULT_LANE: (0, 0, None), **depths}.items()
            )
        ],
        "channels": _channels(config.smtp_host, config.rate_limits),
        "batch_size": config.batch_size,
        "tick_interval_seconds": config.tick_interval,
        "logs": {"format": config.log_format, "level": config.log_level},
        "timings": {
            "flush_seconds": config.stats_flush_seconds,
            "keep_days": config.stats_keep_days,
        },
    }


def _executor(config: Settings, dialect: str, shareable: bool) -> dict[str, Any]:
    """What `drumbeat run` works batches with: Celery when a broker is set, else worker
    processes, or this process (one worker, or an in-memory store) on threads
    (`make_executor`)."""
    if config.broker_url is not None:
        from sqlalchemy.engine import make_url

        try:
            shown = make_url(config.broker_url).render_as_string(hide_password=True)
        except Exception:  # not a URL SQLAlchemy reads: show only its scheme
            shown = config.broker_url.split("://", 1)[0] + "://…"
        return {"kind": "celery", "broker": shown}
    if config.workers > 1 and shareable:
        return {"kind": "processes", "workers": config.workers}
    threads = config.workers if config.workers > 1 else config.threads_in_process(dialect)
    return {"kind": "in-process", "workers": 1, "threads": threads}


def _channels(smtp_host: str | None, rate_limits: dict[str, float]) -> list[dict[str, Any]]:
    from drumbeat.channels.registry import DRY_RUN_EMAIL, SMTP_CHANNEL, registered

    points = registered()
    result = []
    for name, point in sorted(points.items()):
        target = point.value
        if name == "email" and point.value == SMTP_CHANNEL:
            target = (
                f"smtp {smtp_host}" if smtp_host else f"{DRY_RUN_EMAIL} (no SMTP host: dry run)"
            )
        result.append({"channel": name, "sends_with": target, "rate_limit": rate_limits.get(name)})
    return result
