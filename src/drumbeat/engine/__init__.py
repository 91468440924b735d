"""The engine: the pure state machine of a membership. No I/O, no clock reads.

A worker gives it a batch of `Subject`s (user, membership, event facts, recent sends) and
`now`; it returns `Decision`s (new memberships and the messages to queue): `machine.decide`.
The package imports nothing itself, so that a module that needs only `member`'s types (the
store does) does not load the campaign model with it: import from the submodules.
"""
