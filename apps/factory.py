"""Everything built from Settings, built here and only here.

The packages below take what they need explicitly (rules, prefixes, bounds); this module reads
the settings and passes them on, so a setting such as ``TOUCHSTREAM_IDENTITY_RULES_PATH`` is
honoured by every process alike: the worker, the HTTP server, the CLI and the demo (the CLI
once built the identity graph without it and silently used the shipped rules).
"""

from __future__ import annotations

import redis
import redis.asyncio as aioredis

from connectors.ingest import Ingestor, build_ingestor
from connectors.producer import AsyncProducer
from connectors.ratelimit import RateLimiter
from connectors.validation import Limits
from identity.graph import IdentityGraph
from identity.rules import IdentityRules, load_rules
from profiles.rules import DEFAULT_RULES_PATH, RuleSet
from profiles.store import ProfileStore
from touchstream.keys import KeyChecker, KeyStore
from touchstream.settings import Settings


def identity_rules(settings: Settings) -> IdentityRules:
    """Identity merge rules (priority, limits, blocked values); read once at start."""
    return load_rules(settings.identity_rules_path or None)


def profile_rules(settings: Settings) -> RuleSet:
    """Profile rules (aggregates, tags, scores, triggers), hot-reloaded when the file changes."""
    return RuleSet(settings.profile_rules_path or DEFAULT_RULES_PATH)


def redis_client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url)


def async_redis_client(settings: Settings) -> aioredis.Redis:
    return aioredis.Redis.from_url(settings.redis_url)


def identity_graph(settings: Settings, client: redis.Redis) -> IdentityGraph:
    """The identity graph with the configured rules and bounds."""
    return IdentityGraph(client, settings.redis_prefix, identity_rules(settings),
                         max_identifiers_per_event=settings.max_identifiers_per_event)


def profile_store(settings: Settings, client: redis.Redis) -> ProfileStore:
    """The profile store with the configured rules and bounds."""
    return ProfileStore(client, settings.redis_prefix, profile_rules(settings),
                        event_time_skew_ms=settings.event_time_skew_s * 1000,
                        max_traits_per_profile=settings.max_traits_per_profile)


def limits(settings: Settings) -> Limits:
    """What one message may hold at the edge (phone region, event age, trait and identifier caps)."""
    return Limits.from_settings(settings)


def key_store(settings: Settings, client: redis.Redis) -> KeyStore:
    return KeyStore(client, settings.redis_prefix)


def key_checker(settings: Settings, client: aioredis.Redis) -> KeyChecker:
    return KeyChecker(client, settings.redis_prefix, cache_s=settings.key_cache_s)


def rate_limiter(settings: Settings, client: aioredis.Redis) -> RateLimiter:
    return RateLimiter(client, settings.redis_prefix, rate_per_s=settings.rate_limit_per_s,
                       burst=settings.rate_limit_burst)


def ingestor(settings: Settings, client: aioredis.Redis) -> tuple[Ingestor, AsyncProducer]:
    """The collector's way onto the raw topic (and the producer to close on shutdown)."""
    return build_ingestor(settings, client)
