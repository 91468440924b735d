"""Executors run batches: `local` on threads in this process (the embedded shape)."""
