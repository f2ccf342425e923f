"""The stream runtime: checkpointed loops that drive plain stages and sinks.

Engine-neutral (stages are plain objects: records in, outputs out):
``records`` (the one record type), ``intake`` (decode -> claim -> dead letter), ``stages/``
(resolve, profile, merges), ``ports`` (what stages need of Redis, as Protocols; ``testing`` has
in-memory fakes), ``observer`` (every stage metric, from outputs), ``outbox`` (merge and trigger
outboxes, and when to scan them), ``deadletters``, ``sinks`` (the sink contract and drivers),
``claims``, ``failures``, ``idle_profiles``, ``topics``.

The confluent-kafka engine: ``consumer`` and ``producers`` (client settings), ``stage_loop``
(consume, process, isolate failures, commit), ``handlers`` (stage outputs to topics),
``worker`` (the stage process), ``sink_loop`` (a sink process). The logic stages call lives in
``identity`` and ``profiles``.
"""
