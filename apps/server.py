"""``touchstream serve``: one aiohttp server for the collector and the read API; /metrics and
/openapi.json on an internal port of their own (``TOUCHSTREAM_HTTP_OPS_PORT``; 0 puts them on the
public port).

Shared resources (Kafka producer, Redis clients, key checker) are opened on start-up and
closed on clean-up; errors become JSON answers here, in one place:

- ValidationError -> 400 naming the field (counted by reason)
- a write key over its rate -> 429 with Retry-After (connectors/ratelimit.py); a full collector
  (``max_inflight_requests``) -> 503 with Retry-After at once
- aiohttp's own 4xx (404, 405, 413, ...) -> the same JSON error body, naming what was wrong
- Kafka not acknowledging, Redis unreachable -> 503 with Retry-After (SDKs retry)
- anything else is a bug: logged, 500, never the client's input echoed
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis.asyncio as aioredis
import yaml
from aiohttp import web
from confluent_kafka import KafkaException
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from apps import api, factory
from connectors.collector import cors, sdk_config
from connectors.collector import routes as collector_routes
from connectors.collector.routes import dumps_strict, inflight_limit, json_error
from connectors.producer import AsyncProducer
from identity.identifiers import warm_up
from streams.ops_http import Check, readiness
from streams.topics import Topics
from touchstream import metrics
from touchstream.errors import ValidationError
from touchstream.settings import Settings

log = logging.getLogger(__name__)

OPENAPI_PATH = Path(__file__).resolve().parent / "openapi.yaml"
SETTINGS = web.AppKey("settings", Settings)
REDIS = web.AppKey("redis", aioredis.Redis)
READINESS: web.AppKey[Mapping[str, Check]] = web.AppKey("readiness")
PRODUCER = web.AppKey("producer", AsyncProducer)

#: threads parsing and validating bodies: the GIL makes more useless; two keep one heavy batch
#: from queueing the next
VALIDATION_THREADS = 2

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: aiohttp's own plain-text 4xx answers, as (field, reason) of the JSON error body
_HTTP_ERRORS = {
    400: ("body", "bad_request"),
    404: ("path", "not_found"),
    405: ("method", "method_not_allowed"),
    413: ("body", "too_large"),
    415: ("Content-Type", "unsupported_media_type"),
    431: ("headers", "too_large"),
}


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ValidationError as exc:
        metrics.EVENTS_REJECTED.labels("http", exc.reason).inc()
        return json_error(400, exc.field, exc.reason, str(exc))
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        field, reason = _HTTP_ERRORS.get(exc.status, ("request", "rejected"))
        return json_error(exc.status, field, reason, exc.reason, **_kept_headers(exc))
    except KafkaException:
        log.exception("Kafka did not acknowledge; answering 503 so the client retries")
        return json_error(503, "kafka", "unavailable", "the event log is unavailable, retry later",
                          **{"Retry-After": "1"})
    except RedisError:
        log.exception("Redis unavailable; answering 503 so the client retries")
        return json_error(503, "redis", "unavailable", "state store unavailable, retry later",
                          **{"Retry-After": "1"})
    except Exception:
        # A client's mistake is a 4xx raised on purpose; reaching here is a bug to fix.
        log.exception("unexpected error answering %s %s", request.method, request.match_info.route.name)
        return json_error(500, "server", "internal_error", "unexpected error; it has been logged")


def _kept_headers(exc: web.HTTPException) -> dict[str, str]:
    """Headers of aiohttp's answer worth keeping (405's Allow)."""
    return {name: exc.headers[name] for name in ("Allow",) if name in exc.headers}


async def _metrics(_request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _health(_request: web.Request) -> web.Response:
    """Alive: the process answers (a liveness probe never restarts a pod waiting for Kafka)."""
    return web.json_response({"status": "ok"}, dumps=dumps_strict)


async def _ready(request: web.Request) -> web.Response:
    """Ready: Redis and Kafka answer; 503 naming the failing checks takes the pod out of rotation."""
    ready, report = await asyncio.to_thread(readiness, request.app[READINESS])
    return web.json_response({"status": "ready" if ready else "unavailable", "checks": report},
                             status=200 if ready else 503, dumps=dumps_strict)


def load_openapi() -> dict:
    """The API description kept in the repo (YAML for people, served as JSON)."""
    return yaml.safe_load(OPENAPI_PATH.read_text())


async def _openapi(_request: web.Request) -> web.Response:
    return web.json_response(load_openapi(), dumps=dumps_strict)


def create_app(settings: Settings) -> web.Application:
    """The HTTP application; resources open when it starts and close when it stops."""
    # cors_headers outermost: it sees every answer and error of a tracking route, JSON errors included
    app = web.Application(middlewares=[cors.cors_headers(), errors_as_json,
                                       inflight_limit(settings.max_inflight_requests)],
                          client_max_size=2 * 1024 * 1024)
    app[SETTINGS] = settings
    app[collector_routes.LIMITS] = factory.limits(settings)

    async def lifecycle(app: web.Application):  # type: ignore[no-untyped-def]
        warm_up(settings.default_phone_region)
        client = factory.async_redis_client(settings)
        sync_client = factory.redis_client(settings)
        ingestor, producer = factory.ingestor(settings, client)
        keys = factory.key_checker(settings, client)
        executor = ThreadPoolExecutor(VALIDATION_THREADS, thread_name_prefix="validate")
        app[REDIS] = client
        app[collector_routes.EXECUTOR] = executor
        app[collector_routes.RATE_LIMITER] = factory.rate_limiter(settings, client)
        app[PRODUCER] = producer
        app[collector_routes.KEYS] = keys
        app[collector_routes.INGESTOR] = ingestor
        app[api.API_KEYS] = keys
        app[api.GRAPH] = factory.identity_graph(settings, sync_client)
        app[api.PROFILES] = factory.profile_store(settings, sync_client)
        app[api.AUDIT] = (client, settings.redis_prefix)
        app[api.PRODUCER] = producer
        app[api.TOPICS] = Topics.of(settings)
        app[api.LAKE_ROOT] = factory.lake_config(settings).path
        app[api.ERASURE] = factory.erasure_service(settings, sync_client)
        app[READINESS] = factory.readiness_checks(settings, sync_client)
        app[api.REGION] = settings.default_phone_region
        yield
        executor.shutdown(wait=True, cancel_futures=True)
        producer.close()
        await client.aclose()
        sync_client.close()

    app.cleanup_ctx.append(lifecycle)
    collector_routes.add_routes(app)
    sdk_config.add_routes(app)
    api.add_routes(app)
    app.router.add_get("/healthz", _health)
    app.router.add_get("/readyz", _ready)
    if settings.http_ops_port:
        app.cleanup_ctx.append(_ops_listener(settings))
    else:
        add_ops_routes(app)
    return app


def add_ops_routes(app: web.Application) -> None:
    """What operators read and the public must not: the metrics and the API description."""
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/openapi.json", _openapi)


def _ops_listener(settings: Settings):  # type: ignore[no-untyped-def]  # an aiohttp cleanup context
    """The internal port, started and stopped with the public app: metrics stay off the internet."""

    async def listener(_app: web.Application):  # type: ignore[no-untyped-def]
        ops = web.Application()
        add_ops_routes(ops)
        ops.router.add_get("/healthz", _health)  # the scrape target itself answers
        runner = web.AppRunner(ops, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, settings.http_ops_host, settings.http_ops_port).start()
        yield
        await runner.cleanup()

    return listener


def serve(settings: Settings) -> None:
    """Run the server until interrupted."""
    # auto_decompress off: gzip bodies are inflated by connectors.collector.body, bounded. Both go
    # to the request handler as keywords: an unknown one (handler_args={...} once) made aiohttp
    # drop them all, so the access log wrote identifiers from URLs and aiohttp inflated bodies.
    web.run_app(create_app(settings), host=settings.http_host, port=settings.http_port,
                access_log=None, print=None, auto_decompress=False)
