"""A pure-Python reference of the OneID resolver: graph.lua, graph_admin.lua and graph_lib.lua,
driven like :class:`identity.graph.IdentityGraph`, without Redis.

The Lua scripts are the behaviour; this package is an executable specification of them, written
to be read and to make rule changes testable with a dict: fast unit tests pin merge, limit and
guard semantics through it, and tests/integration/test_identity_reference.py checks it against
the real scripts on random sequences of batches and operator actions. It is not a production path
(no concurrency, no durability, no metrics).

Modules mirror the scripts: ``state`` (graph_lib.lua: the graph's structures and shared helpers),
``resolve`` (graph.lua: one batch), ``admin`` (graph_admin.lua: unmerge, delete, collect) and
``graph`` (graph.py: screening before the script, the answer's shape after).

It models the whole state the scripts read: the index (GUARDED once the frequency guard stopped a
value), profiles (edges with anchor, "since" and trust mark, creation time, person, per-type
counts, aliases, never-merge lists), the alias map, the frequency-guard sets, the suppression hash and the
anonymous set. It leaves out partition/offset provenance, message-id compaction, the merge outbox,
the audit stream and the guard sets' expiry (Redis expires them frequency_guard.window_days after
the last write, by wall clock).
"""

from identity.reference.graph import ReferenceGraph

__all__ = ["ReferenceGraph"]
