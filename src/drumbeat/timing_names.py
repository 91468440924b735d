"""Names of the timings every process records (drumbeat.metrics) and `drumbeat stats` reads
(drumbeat.stats): here, apart, so that reading them imports no Prometheus client."""

from __future__ import annotations

# Names other engineers' parts record (the user cache): `tally(CACHE_HITS, n)`.
CACHE_HITS = "cache.hits"
CACHE_MISSES = "cache.misses"
TICK_STAGE = "stage.tick"  # a whole tick of `run` or `advance`: plan, lanes, dispatch
PLAN_STAGE = "stage.plan"  # a tick's planning of every campaign
BATCH_STAGE = "stage.batch"  # its items: users processed
DISPATCH_STAGE = "stage.dispatch"  # a claim sent (the store work alongside); items: messages
GLOBAL = 0  # the workspace of rows that are not one workspace's (queries and stages)
