"""The stream engine: the Faust app, its agents and timers, and the topics they connect.

Agents only loop and delegate; the logic they call lives in ``identity`` and ``profiles``
as plain functions.
"""
