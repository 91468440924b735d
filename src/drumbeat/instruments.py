"""The Prometheus instruments `metrics` feeds, loaded once Prometheus reads them
(`metrics.prometheus`): a command whose metrics nobody serves does not load
prometheus_client (~30 ms of its start-up)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

QUERY_SECONDS = Histogram(
    "drumbeat_query_seconds",
    "Time spent in one named store, cache or index query, or one stage of the flow.",
    ["query"],
    registry=REGISTRY,
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
QUERY_ITEMS = Counter(
    "drumbeat_query_items_total",
    "Rows or users handled by a named query.",
    ["query"],
    registry=REGISTRY,
)
BATCHES = Counter(
    "drumbeat_batches_total",
    "Batches a worker finished, by lane and outcome (done, skipped, lease_lost, failed).",
    ["lane", "outcome"],
    registry=REGISTRY,
)
BATCH_USERS = Counter(
    "drumbeat_batch_users_total",
    "Users of the batches finished, by lane.",
    ["lane"],
    registry=REGISTRY,
)
TEMPLATE_MISSING = Counter(
    "drumbeat_template_missing_total",
    "Messages sent with a value their template writes missing for the user (written empty).",
    ["campaign", "step", "name"],
    registry=REGISTRY,
)
CACHE_ERRORS = Counter(
    "drumbeat_cache_errors_total",
    "Calls to the Redis user cache that failed (the users were read from the store).",
    registry=REGISTRY,
)
REDIS_FALLBACKS = Counter(
    "drumbeat_rate_limit_redis_fallbacks_total",
    "Rate-limit grants counted in the store because Redis was out of reach.",
    registry=REGISTRY,
)
