"""The data Drumbeat reasons about: attribute types, users, rules and (later) campaigns.

Pure: nothing here does I/O or reads the clock.
"""
