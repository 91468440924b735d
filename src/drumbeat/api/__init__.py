"""The HTTP API (`drumbeat serve`, extra `drumbeat[api]`): Segment-compatible tracking."""
