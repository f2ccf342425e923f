"""The Faust application: built from :class:`Settings`, agents registered by module.

Faust is kept at arm's length: no Faust tables (state lives in Redis), topics are declared
by the project (``topic_allow_declare=False``), agents take batches with manual acks
(``streams.batching``) and delegate to plain stage classes in ``streams.stages``. Outputs go
through one confluent-kafka producer (idempotent, acks=all) shared by the agents.
"""

from __future__ import annotations

import faust
import redis
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from connectors.producer import AsyncProducer, producer_config
from identity.graph import IdentityGraph
from profiles.store import ProfileStore
from schemas.codec import default_registry
from streams.stages.profile import ProfileStage
from streams.stages.resolve import ResolveStage
from streams.topics import Topics
from touchstream.rules import identity_rules, profile_rules
from touchstream.settings import Settings


def create_app(settings: Settings) -> faust.App:
    """A Faust app wired to the settings' broker and Redis, with every agent registered."""
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.broker}",
        store="memory://",
        web_host=settings.http_host,
        web_port=settings.worker_web_port,
        topic_partitions=settings.partitions,
        topic_allow_declare=False,
        topic_disable_leader=True,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        # A SIGKILLed worker's partitions move to the others after 10 s, not Faust's default 60 s.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
    )
    topics = Topics.of(settings)
    client = redis.Redis.from_url(settings.redis_url)
    registry = default_registry()
    producer = AsyncProducer(producer_config(settings.broker))

    from streams.agents import profile, resolve

    graph = IdentityGraph(client, settings.redis_prefix, identity_rules(settings))
    store = ProfileStore(client, settings.redis_prefix, profile_rules(settings))
    resolve.register(
        app, topics, settings,
        ResolveStage(client=client, graph=graph, registry=registry, prefix=settings.redis_prefix,
                     raw_topic=topics.raw, dedup_window_s=settings.stream_dedup_window_s),
        producer,
    )
    profile.register(
        app, topics, settings,
        ProfileStage(client=client, store=store, registry=registry, prefix=settings.redis_prefix,
                     resolved_topic=topics.resolved, dedup_window_s=settings.stream_dedup_window_s),
        producer, registry,
    )

    @app.page("/metrics")
    async def metrics_page(view: faust.web.View, _request: faust.web.Request) -> faust.web.Response:
        return view.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST)

    # No producer close on shutdown: a batch still in flight was not acked, so it is replayed.
    return app


def run_worker(settings: Settings) -> None:
    """Run one worker until SIGTERM/SIGINT (``touchstream worker``)."""
    from faust.worker import Worker

    app = create_app(settings)
    Worker(app, loglevel=settings.log_level.lower(), quiet=True).execute_from_commandline()
