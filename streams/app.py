"""The Faust application: built from :class:`Settings`, agents registered by module.

Faust is kept at arm's length: no Faust tables (state lives in Redis), topics are declared
by the project (``topic_allow_declare=False``), and agents delegate to plain functions.
"""

from __future__ import annotations

import faust

from streams.topics import Topics
from touchstream.settings import Settings


def create_app(settings: Settings) -> faust.App:
    """A Faust app wired to the settings' broker, with every agent registered."""
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
    )
    from streams.agents import passthrough

    passthrough.register(app, Topics.of(settings))
    return app


def run_worker(settings: Settings) -> None:
    """Run one worker until SIGTERM/SIGINT (``touchstream worker``)."""
    from faust.worker import Worker

    app = create_app(settings)
    Worker(app, loglevel=settings.log_level.lower(), quiet=True).execute_from_commandline()
