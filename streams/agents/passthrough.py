"""Raw -> resolved, unchanged: proves the wiring end to end until OneID resolution lands."""

from __future__ import annotations

import faust

from streams.topics import Topics


def register(app: faust.App, topics: Topics) -> None:
    raw = app.topic(topics.raw, key_serializer="raw", value_serializer="raw")
    resolved = app.topic(topics.resolved, key_serializer="raw", value_serializer="raw")

    @app.agent(raw, name="passthrough")
    async def passthrough(stream: faust.StreamT) -> None:
        async for event in stream.events():
            await resolved.send(key=event.message.key, value=event.value)
