"""Profile state per OneID: traits, rolling aggregates, tags, scores, triggers.

    store.py        the API (ProfileStore): read, engine, apply; a sans-I/O core and a driver
    engine.py       one batch or sweep: dispatches each event to the steps and trigger kinds
    events.py       the event as rules read it (valid time, clean text, lazy JSON members)
    evaluation.py   CEL conditions: contexts that never raise, memos, errors as counts
    facts.py        aggregates, score, tier, consent, the ``profile`` variable
    updates.py      traits, aggregates, behaviour points, tags
    firing.py       consent, cooldown, idempotency -> a fire op and a trigger record
    triggers/       trigger records; kinds/ holds one module per trigger kind
    rules/          the rules file: model, checks, compile, load, index, caches, reload
    state.py        one profile's copy and the ops it records for Redis
    layout.py       the Redis layout, declared once (Lua constants generated from it)
    script.py, lua/ the one Lua script, one file per command
    aggregates.py, dwell.py, scoring.py, conditions.py, durations.py, jsonsafe.py: pure helpers
"""
