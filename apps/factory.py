"""Everything built from Settings, built here and only here.

The packages below take what they need explicitly (rules, prefixes, bounds); this module reads
the settings and passes them on, so a setting such as ``TOUCHSTREAM_IDENTITY_RULES_PATH`` is
honoured by every process alike: the worker, the HTTP server, the CLI and the demo (the CLI
once built the identity graph without it and silently used the shipped rules).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import redis
import redis.asyncio as aioredis

from apps.erasure import ErasureService
from connectors.dedup import EdgeDedup
from connectors.ingest import BlockingIngest, Ingestor
from connectors.lake.config import LakeConfig
from connectors.lake.erase import RollFilter, erase_person
from connectors.lake.location import is_url, local_folder, with_endpoint
from connectors.ratelimit import RateLimiter
from connectors.validation import Limits
from identity.graph import IdentityGraph
from identity.identifiers import CORE_TYPES
from identity.rules import IdentityRules, load_rules
from profiles.rules import DEFAULT_RULES_PATH, RuleSet
from profiles.store import ProfileStore
from schemas.codec import default_registry
from streams.erased_letters import Person, mark_erased
from streams.ops_http import Check, kafka_check, redis_check
from streams.outbox import SegmentOutbox
from streams.producers import AsyncProducer, BlockingProducer, producer_config
from streams.publish import SegmentPublisher
from streams.topics import Topics
from touchstream.keys import KeyChecker, KeyStore
from touchstream.pseudonyms import Pseudonyms
from touchstream.settings import Settings


def identity_rules(settings: Settings) -> IdentityRules:
    """Identity merge rules (priority, limits, blocked values); read once per process and path
    (the graph, the ingestor and the edge limits all ask)."""
    return _identity_rules(settings.identity_rules_path or None)


@functools.cache
def _identity_rules(path: str | None) -> IdentityRules:
    return load_rules(path)


def profile_rules(settings: Settings) -> RuleSet:
    """Profile rules (aggregates, tags, scores, triggers), hot-reloaded when the file changes."""
    return RuleSet(settings.profile_rules_path or DEFAULT_RULES_PATH)


def redis_client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url)


def async_redis_client(settings: Settings) -> aioredis.Redis:
    return aioredis.Redis.from_url(settings.redis_url)


def pseudonyms(settings: Settings) -> Pseudonyms:
    """The deployment's keyed pseudonyms (the secret file is read once per process)."""
    return _pseudonyms(settings.pseudonym_secret, settings.pseudonym_secret_previous,
                       settings.pseudonym_secret_file)


@functools.lru_cache(maxsize=4)
def _pseudonyms(secret: str, previous: str, path: str) -> Pseudonyms:
    return Pseudonyms.from_settings(Settings(pseudonym_secret=secret, pseudonym_secret_previous=previous,
                                             pseudonym_secret_file=path))


def identity_graph(settings: Settings, client: redis.Redis) -> IdentityGraph:
    """The identity graph with the configured rules, bounds and pseudonyms."""
    return IdentityGraph(client, settings.redis_prefix, identity_rules(settings),
                         pseudonyms=pseudonyms(settings),
                         max_identifiers_per_event=settings.max_identifiers_per_event)


def profile_store(settings: Settings, client: redis.Redis) -> ProfileStore:
    """The profile store with the configured rules and bounds."""
    return ProfileStore(client, settings.redis_prefix, profile_rules(settings),
                        event_time_skew_ms=settings.event_time_skew_s * 1000,
                        max_traits_per_profile=settings.max_traits_per_profile)


def readiness_checks(settings: Settings, client: redis.Redis) -> dict[str, Check]:
    """What ``/readyz`` asks: Redis answers PING, Kafka answers a metadata request."""
    return {"redis": redis_check(client), "kafka": kafka_check(settings.broker)}


def limits(settings: Settings, rules: IdentityRules | None = None) -> Limits:
    """What one message may hold at the edge (phone region, event age, trait and identifier caps);
    the identifier types it pulls out of traits by name are the rules' own (``rules``, default
    the configured file): a custom type is rules data, not code."""
    rules = rules if rules is not None else identity_rules(settings)
    custom = tuple(t for t in rules.priority if t not in CORE_TYPES)
    return Limits.from_settings(settings, custom_types=custom)


def key_store(settings: Settings, client: redis.Redis) -> KeyStore:
    return KeyStore(client, settings.redis_prefix)


def key_checker(settings: Settings, client: aioredis.Redis) -> KeyChecker:
    return KeyChecker(client, settings.redis_prefix, cache_s=settings.key_cache_s)


def rate_limiter(settings: Settings, client: aioredis.Redis) -> RateLimiter:
    return RateLimiter(client, settings.redis_prefix, rate_per_s=settings.rate_limit_per_s,
                       burst=settings.rate_limit_burst)


def ingestor(settings: Settings, client: aioredis.Redis) -> tuple[Ingestor, AsyncProducer]:
    """The way onto the raw topic (and the producer to close on shutdown): the settings' broker,
    raw topic and dedup window, partition keys ranked by the configured identity rules."""
    producer = AsyncProducer(producer_config(settings.broker))
    dedup = EdgeDedup(client, settings.redis_prefix, settings.dedup_window_s)
    ingest = Ingestor(producer=producer, dedup=dedup, encode=default_registry().encoder("event"),
                      topic=Topics.of(settings).raw, rules=identity_rules(settings))
    return ingest, producer


def blocking_ingest(settings: Settings, source: str, edge_limits: Limits) -> BlockingIngest:
    """The ingestor for synchronous callers (the importers), with its own Redis client."""
    client = async_redis_client(settings)
    ingest, producer = ingestor(settings, client)
    return BlockingIngest(ingest, producer, client, source=source, limits=edge_limits)


def segment_publisher(settings: Settings, client: redis.Redis) -> SegmentPublisher:
    """Where an SQL segment refresh sends its records: the segments topic, through the outbox."""
    return SegmentPublisher(BlockingProducer(producer_config(settings.broker)), Topics.of(settings).segments,
                            SegmentOutbox(client, settings.redis_prefix), default_registry())


def lake_config(settings: Settings) -> LakeConfig:
    """The lake's folder or URL, its sink's spool and rolls, and the topics, group and batches its
    sink reads with (a URL lake's spool defaults to a local folder: ``connectors/lake/location.py``)."""
    spool = Path(settings.lake_spool_path) if settings.lake_spool_path else None
    path: Path | str = Path(settings.lake_path)
    if is_url(settings.lake_path):
        path = with_endpoint(settings.lake_path, settings.lake_s3_endpoint)
        if local_folder(settings.lake_path) is None:  # an object store: the spool stays on this disk
            spool = spool or Path(".local/lake-spool")
    return LakeConfig(path=path, spool_path=spool, roll_bytes=settings.lake_roll_bytes,
                      roll_s=float(settings.lake_roll_s), broker=settings.broker,
                      group=f"{settings.app_id}-lake", topic_prefix=settings.topic_prefix,
                      deadletter_topic=Topics.of(settings).deadletter, batch_size=settings.lake_batch_size,
                      metrics_host=settings.http_host, metrics_port=settings.lake_metrics_port)


def blocking_producer(settings: Settings) -> BlockingProducer:
    """An idempotent, acks=all producer for synchronous callers (``touchstream rfm``)."""
    return BlockingProducer(producer_config(settings.broker))


def erased_people(settings: Settings, client: redis.Redis) -> Callable[[], Person]:
    """Everyone erased, read from Redis each call: tombstoned OneIDs and still-suppressed
    identifier hashes (what the lake sink's rolls and dead-letter readers leave out)."""
    graph = identity_graph(settings, client)
    return lambda: Person(frozenset(graph.erased_oneids()), frozenset(graph.suppressed_hashes()),
                          graph.pseudonyms)


def lake_roll_filter(settings: Settings, client: redis.Redis) -> RollFilter:
    """The lake sink's filter of every roll: rows of erased people are left out."""
    return RollFilter(erased_people(settings, client))


def erasure_service(settings: Settings, client: redis.Redis) -> ErasureService:
    """The one erasure service (CLI and API): graph, profile state, webhook marks, dead letters
    (the configured broker's dead-letter topic) and the lake (folder or URL) with its sink's spool."""
    topic = Topics.of(settings).deadletter
    lake_at = lake_config(settings)

    def dead_letters(oneids: frozenset[str], hashes: frozenset[str]) -> dict[str, object]:
        person = Person(oneids, hashes, pseudonyms(settings))
        marked = mark_erased(client, settings.redis_prefix, settings.broker, topic, person)
        return {"marked": marked}

    def lake(oneids: frozenset[str], hashes: frozenset[str]) -> dict[str, object]:
        return erase_person(lake_at.path, Person(oneids, hashes), spool=lake_at.spool_root()).as_dict()

    return ErasureService(identity_graph(settings, client), profile_store(settings, client), client,
                          settings.redis_prefix, suppress_ms=settings.erasure_suppression_s * 1000,
                          dead_letters=dead_letters, lake=lake)
