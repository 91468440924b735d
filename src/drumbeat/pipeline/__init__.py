"""The flow of work: the planner cuts what changed or came due into batches, workers run
the engine on them, the dispatcher sends what they queued. See docs/architecture.md."""
