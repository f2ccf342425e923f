"""``make bench``: speed and memory measured on the real stack, each beside a baseline from the same run.

Benchmarks print figures; they assert nothing (tests check correctness, not speed).
"""
