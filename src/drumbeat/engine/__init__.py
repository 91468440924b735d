"""The engine: the pure state machine of a membership. No I/O, no clock reads.

A worker gives it a batch of `Subject`s (user, membership, event facts, recent sends) and
`now`; it returns `Decision`s (new memberships and the messages to queue).
"""

from drumbeat.engine.machine import decide, decide_one, dedupe_key
from drumbeat.engine.member import END, START, Decision, Member, OutMessage, State, Subject
from drumbeat.engine.program import Program, compile_program
from drumbeat.engine.timing import FrequencyCap, Window

__all__ = [
    "END",
    "START",
    "Decision",
    "FrequencyCap",
    "Member",
    "OutMessage",
    "Program",
    "State",
    "Subject",
    "Window",
    "compile_program",
    "decide",
    "decide_one",
    "dedupe_key",
]
