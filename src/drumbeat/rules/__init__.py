"""Rules compiled two ways that must agree: a Python predicate for one user at a time, and
SQL for selecting an audience in the store. Pure: nothing here does I/O."""

from drumbeat.rules.predicate import (
    Facts,
    Predicate,
    RawEvent,
    compile_predicate,
    count_matching_events,
)
from drumbeat.rules.resolve import Check, resolve, type_problems
from drumbeat.rules.sql import DIALECTS, compile_sql, event_counts_select

__all__ = [
    "DIALECTS",
    "Check",
    "Facts",
    "Predicate",
    "RawEvent",
    "compile_predicate",
    "compile_sql",
    "count_matching_events",
    "event_counts_select",
    "resolve",
    "type_problems",
]
