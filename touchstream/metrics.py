"""Every Prometheus metric of the project, declared in one place.

Label values are bounded sets (endpoints, reason codes, identifier types), never user data.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_RECEIVED = Counter(
    "touchstream_events_received_total", "Messages received by a source", ["source_kind"]
)
EVENTS_ACCEPTED = Counter(
    "touchstream_events_accepted_total", "Messages acknowledged by Kafka on the raw topic", ["source_kind"]
)
EVENTS_REJECTED = Counter(
    "touchstream_events_rejected_total", "Messages rejected at the edge, by reason", ["source_kind", "reason"]
)
EVENTS_DUPLICATE = Counter(
    "touchstream_events_duplicate_total", "Messages dropped as duplicates of a seen messageId", ["stage"]
)
INVALID_IDENTIFIERS = Counter(
    "touchstream_invalid_identifiers_total", "Identifiers kept in the payload but not used",
    ["type", "reason"],
)
AUTH_FAILURES = Counter("touchstream_auth_failures_total", "Requests refused for their key", ["reason"])
DEADLETTERS = Counter(
    "touchstream_deadletters_total", "Records sent to the dead-letter topic", ["stage", "reason"]
)
PRODUCE_SECONDS = Histogram(
    "touchstream_produce_seconds", "Time from produce to broker acknowledgement, per request",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
EVENTS_RESOLVED = Counter("touchstream_events_resolved_total", "Events stamped with a OneID")
EVENTS_SUPPRESSED = Counter(
    "touchstream_events_suppressed_total", "Events of deleted profiles, counted and not kept"
)
IDENTITY_MERGES = Counter("touchstream_identity_merges_total", "Profiles merged into an older one")
IDENTITY_REJECTIONS = Counter(
    "touchstream_identity_rejections_total", "Identifiers not linked, by reason", ["reason"]
)
STAGE_BATCH_SECONDS = Histogram(
    "touchstream_stage_batch_seconds", "Time to process one batch, by stage", ["stage"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
PROFILE_EVENTS = Counter(
    "touchstream_profile_events_total", "Resolved events at the profile stage, by outcome", ["outcome"]
)
MARKETING_SUPPRESSED = Counter(
    "touchstream_marketing_triggers_suppressed_total", "Marketing triggers withheld for lack of consent"
)
TRIGGERS = Counter("touchstream_triggers_total", "Triggers acknowledged on the triggers topic", ["rule"])
SEGMENT_CHANGES = Counter(
    "touchstream_segment_changes_total",
    "Segment entries and exits acknowledged on the segments topic (segment names come from the rules file)",
    ["segment", "type"],
)
CONSUMER_LAG = Gauge(
    "touchstream_consumer_lag_records",
    "Records behind the partition's end after the stage's last batch (high watermark - next offset)",
    ["stage", "topic", "partition"],
)
STAGE_LAST_POLL = Gauge(
    "touchstream_stage_last_poll_timestamp_seconds",
    "When the stage loop last asked Kafka for records: stale means stuck (a batch retried forever)",
    ["stage"],
)
PROCESSING_ERRORS = Counter(
    "touchstream_processing_errors_total",
    "Records a stage could not process (data errors): isolated and dead-lettered, the batch went on",
    ["stage", "error"],
)
STAGE_RETRIES = Counter(
    "touchstream_stage_retries_total", "Batch attempts failed by Redis or Kafka and retried", ["stage"]
)
PROFILE_TRAITS_DROPPED = Counter(
    "touchstream_profile_traits_dropped_total", "New traits not kept because a profile holds its cap"
)
RULE_ERRORS = Counter(
    "touchstream_rule_errors_total",
    "Rule conditions or expressions that failed on an event's data and counted as false (event kept)",
)
TRIGGER_DELAY = Histogram(
    "touchstream_trigger_delay_seconds",
    "From the moment a trigger became due (the event time it fired at) to Kafka's acknowledgement",
    ["rule"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
)
PROFILES_COLLECTED = Counter(
    "touchstream_profiles_collected_total", "Anonymous-only profiles removed after their idle period"
)
RATE_LIMITED = Counter(
    "touchstream_rate_limited_total", "Requests answered 429 because their write key was over its rate",
    ["source"],
)
REQUESTS_SHED = Counter(
    "touchstream_requests_shed_total", "Requests answered 503 at once because the collector was full"
)
ORIGINS_REFUSED = Counter(
    "touchstream_origins_refused_total",
    "Browser requests refused because their Origin is not allowed for the write key", ["source"],
)
LAKE_ROWS = Counter("touchstream_lake_rows_total", "Rows the lake sink wrote to Parquet files", ["table"])
LAKE_BYTES = Counter("touchstream_lake_bytes_total", "Bytes of Parquet files the lake sink wrote", ["table"])
LAKE_FILES = Counter("touchstream_lake_files_total", "Parquet files the lake sink wrote (rolls)", ["table"])
LAKE_SKIPPED = Counter(
    "touchstream_lake_skipped_total",
    "Replayed records already in a lake file or segment (not written twice)",
    ["table"],
)
LAKE_SPOOLED_ROWS = Gauge(
    "touchstream_lake_spooled_rows",
    "Rows durable in the lake's spool but not yet in a Parquet file (visible after the next roll)",
    ["table"],
)
ERASURES = Counter(
    "touchstream_erasures_total", "Erasures finished (every store), and steps left pending for a retry",
    ["outcome"],
)
ERASED_REFUSED = Counter(
    "touchstream_erased_refused_total",
    "Records naming an erased OneID refused instead of re-creating the person (rejection reason erased)",
    ["stage"],
)
LAKE_ERASED_ROWS = Counter(
    "touchstream_lake_erased_rows_total",
    "Lake rows of erased people removed: by an erasure rewriting files, or by the sink when it rolls",
    ["table", "by"],
)
LAKE_ROLL_FAILURES = Counter(
    "touchstream_lake_roll_failures_total",
    "Rolls that could not write the lake (a full disk, an unreachable object store); the rows stay "
    "in the spool and the roll is tried again",
    ["table"],
)
