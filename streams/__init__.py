"""The stream runtime: checkpointed loops that drive plain stages and sinks.

Engine-neutral core: ``records`` (the one record type), ``intake`` (decode -> claim -> dead
letter), ``stages/`` (resolve, profile, merges: records in, outputs out), ``ports`` (what stages
need of Redis, as Protocols; ``testing`` has fakes), ``observer`` (every stage metric),
``outbox``, ``deadletters``, ``sinks`` (the sink contract). The confluent-kafka engine:
``consumer``, ``producers``, ``stage_loop`` (consume, process, commit), ``handlers`` (outputs to
topics), ``worker`` (the process). The logic stages call lives in ``identity`` and ``profiles``.
"""
