"""The ``touchstream`` command line (click)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from apps import analytics_cli
from streams.clients import use_options
from touchstream import logs
from touchstream.errors import TouchstreamError
from touchstream.settings import Settings


@click.group()
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Touchstream: an event-streaming customer data platform."""
    try:
        settings = Settings.from_env()
    except TouchstreamError as exc:
        raise click.ClickException(str(exc)) from None
    logs.configure(settings.log_level)
    use_options(settings.kafka_client_options())  # TLS/SASL for every Kafka client of this process
    ctx.obj = settings


@cli.group()
def topics() -> None:
    """Kafka topics of the platform."""


@topics.command("create")
@click.pass_obj
def topics_create(settings: Settings) -> None:
    """Create every topic that does not exist yet (idempotent)."""
    from streams.topics import create_topics

    try:
        created = create_topics(settings)
    except TouchstreamError as exc:
        raise click.ClickException(str(exc)) from None
    for name, outcome in sorted(created.items()):
        click.echo(f"{name}: {outcome}")


@cli.command()
@click.pass_obj
def worker(settings: Settings) -> None:
    """Run a stream worker (resolve, profile, merge-profiles loops) until stopped."""
    from apps.worker import run_worker

    run_worker(settings)


@cli.command()
@click.pass_obj
def serve(settings: Settings) -> None:
    """Run the HTTP collector and API (Segment Tracking API on /v1/*)."""
    from apps.server import serve as run_server

    click.echo(f"touchstream: serving on http://{settings.http_host}:{settings.http_port}", err=True)
    run_server(settings)


@cli.group()
def keys() -> None:
    """API keys: write (collector), read (profiles, identities), admin (deletion, unmerge)."""


def _key_store(settings: Settings):  # type: ignore[no-untyped-def]
    from apps import factory

    return factory.key_store(settings, factory.redis_client(settings))


@keys.command("create")
@click.option("--scope", type=click.Choice(["write", "read", "admin"]), required=True)
@click.option("--name", required=True, help="Who uses the key; a write key's name is the event source.")
@click.option("--rate", type=click.IntRange(min=1), default=None,
              help="Events per second this write key may send (default: TOUCHSTREAM_RATE_LIMIT_PER_S).")
@click.option("--burst", type=click.IntRange(min=1), default=None,
              help="Events this write key may send at once (default: TOUCHSTREAM_RATE_LIMIT_BURST).")
@click.option("--origin", "origins", multiple=True, metavar="ORIGIN",
              help="A site whose pages may use this write key, e.g. https://shop.example.cn (repeat for "
                   "several; '*' allows every site). Without it the key is refused to browsers.")
@click.option("--trusted/--untrusted", default=None,
              help="Whether this write key's events may merge people and override untrusted links "
                   "(default: trusted without --origin, untrusted with it).")
@click.option("--assert", "assertable", multiple=True, metavar="TYPE",
              help="An identifier type this write key may assert (repeat; default: every type for a "
                   "server key, anonymous_id, device_id, email, phone and user_id for a browser key).")
@click.pass_obj
def keys_create(settings: Settings, scope: str, name: str, rate: int | None, burst: int | None,
                origins: tuple[str, ...], trusted: bool | None, assertable: tuple[str, ...]) -> None:
    """Create a key and print it (only the key, on stdout; it is not shown again)."""
    if (rate is not None or burst is not None or origins or trusted is not None or assertable) \
            and scope != "write":
        raise click.UsageError("--rate, --burst, --origin, --trusted and --assert apply to write keys only")
    from touchstream.text import NAME

    for type_ in assertable:
        if not NAME.match(type_):
            raise click.BadParameter(f"{type_!r} is not an identifier type name", param_hint="--assert")
    from touchstream.keys import normalise_origin

    for origin in origins:
        try:
            normalise_origin(origin)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--origin") from None
    click.echo(_key_store(settings).create(scope, name, rate=rate, burst=burst, origins=origins,
                                           trusted=trusted, assertable=assertable or None))


@keys.command("revoke")
@click.argument("key_or_id")
@click.pass_obj
def keys_revoke(settings: Settings, key_or_id: str) -> None:
    """Revoke a key by the key itself or its id."""
    if not _key_store(settings).revoke(key_or_id):
        raise click.ClickException("no such key")
    click.echo("revoked", err=True)


@keys.command("list")
@click.pass_obj
def keys_list(settings: Settings) -> None:
    """List keys (ids, names, scopes; never secrets)."""
    for key in _key_store(settings).list():
        state = "revoked" if key.revoked else "active"
        click.echo(f"{key.key_id}\t{key.scope}\t{state}\t{key.name}")


@cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--kind", type=click.Choice(["contacts", "orders", "events"]), required=True)
@click.option("--map", "maps", multiple=True, help="column=field pairs, e.g. mobile=traits.phone.")
@click.option("--source", default=None, help="Source name for dedup and lineage (default import-KIND).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--timezone", "zone_name", default=None,
              help="Where times without an offset were written, e.g. Asia/Shanghai (default: UTC).")
@click.option("--encoding", default="auto", show_default=True,
              help="Text files' encoding: auto (UTF-8, else GB18030/GBK), utf-8, gb18030, ...")
@click.pass_obj
def import_(settings: Settings, file: Path, kind: str, maps: tuple[str, ...], source: str | None,
            no_progress: bool, zone_name: str | None, encoding: str) -> None:
    """Import CRM contacts, orders or events from CSV, JSONL, Parquet or Excel (.xlsx) through the
    same validation as the collector."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from apps import factory
    from connectors.importers import import_file, parse_mapping

    try:
        mapping = parse_mapping(maps)
        zone = ZoneInfo(zone_name) if zone_name else None
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(f"unknown time zone {zone_name!r}", param_hint="--timezone") from None
    except TouchstreamError as exc:
        raise click.ClickException(str(exc)) from None
    limits = factory.limits(settings)
    ingest = factory.blocking_ingest(settings, source or f"import-{kind}", limits)
    try:
        summary = import_file(file, kind=kind, mapping=mapping, submit=ingest.submit,
                              progress=not no_progress, limits=limits, timezone=zone, encoding=encoding,
                              pseudonyms=factory.pseudonyms(settings))
    except TouchstreamError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        ingest.close()
    click.echo(summary.render())


@cli.group()
def identity() -> None:
    """OneID: look up, split and audit identities."""


def _graph(settings: Settings):  # type: ignore[no-untyped-def]
    """The graph with the configured identity rules (custom types and buckets included)."""
    from apps import factory

    return factory.identity_graph(settings, factory.redis_client(settings))


def _identifier(settings: Settings, spec: str) -> tuple[str, str]:
    from identity.identifiers import InvalidIdentifier, normalise

    type_, sep, value = spec.partition(":")
    if not sep or not value:
        raise click.BadParameter("use type:value, e.g. email:ann@example.com")
    try:
        return type_, normalise(type_, value, default_region=settings.default_phone_region)
    except InvalidIdentifier as exc:
        raise click.BadParameter(f"invalid {type_}: {exc.reason}") from None


@identity.command("show")
@click.argument("identifier")
@click.pass_obj
def identity_show(settings: Settings, identifier: str) -> None:
    """Show the profile of IDENTIFIER (type:value, any spelling) and its identifiers."""
    type_, value = _identifier(settings, identifier)
    graph = _graph(settings)
    oneid = graph.lookup(type_, value)
    if oneid is None:
        raise click.ClickException("no profile has this identifier")
    click.echo(json.dumps({"oneid": oneid, "identifiers": graph.profile_identifiers(oneid)}, indent=2))


@identity.command("unmerge")
@click.argument("oneid")
@click.option("--identifier", required=True, help="type:value to split off, e.g. phone:+8613912345678")
@click.option("--actor", default="cli", show_default=True, help="Who asks (written to the audit log).")
@click.pass_obj
def identity_unmerge(settings: Settings, oneid: str, identifier: str, actor: str) -> None:
    """Split a wrong merge: IDENTIFIER (and what came through it) leaves ONEID for a new profile."""
    from apps.unmerges import announce
    from identity.exceptions import IdentityError

    type_, value = _identifier(settings, identifier)
    graph = _graph(settings)
    try:
        result = graph.unmerge(oneid, type_, value, actor=actor)
    except IdentityError as exc:
        raise click.ClickException(str(exc)) from None
    announce(settings, graph, result)  # the lake's identities follow it
    click.echo(json.dumps({"oneid": result.oneid, "new_oneid": result.new_oneid,
                           "identifiers": result.identifiers, "message_ids": result.message_ids}, indent=2))


@identity.command("delete")
@click.argument("oneid")
@click.option("--actor", default="cli", show_default=True)
@click.pass_obj
def identity_delete(settings: Settings, oneid: str, actor: str) -> None:
    """Erase a person from every store: identity, profile state, timers, outboxes, webhook marks,
    dead letters, the lake (audited; identifiers suppressed). Prints the erasure report; exits 3
    while steps are pending (run it again to resume)."""
    from apps import factory
    from apps.erasure import NothingToErase

    service = factory.erasure_service(settings, factory.redis_client(settings))
    try:
        report = service.erase(oneid, actor)
    except NothingToErase as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(report.as_dict(), indent=2, sort_keys=True))
    if not report.finished:
        click.echo(f"erasure pending: {', '.join(report.pending)}; run the command again to resume", err=True)
        sys.exit(3)


@identity.command("export")
@click.argument("oneid")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the JSON here instead of stdout.")
@click.pass_obj
def identity_export(settings: Settings, oneid: str, out: Path | None) -> None:
    """Subject access: every identifier, trait, tag, score, tier, consent, trigger and lake row held
    on the person behind ONEID (any of their OneIDs), as one JSON document."""
    from apps import factory
    from apps.access import subject_access

    client = factory.redis_client(settings)
    document = subject_access(oneid, factory.identity_graph(settings, client),
                              factory.profile_store(settings, client), factory.lake_config(settings).path)
    if document is None:
        raise click.ClickException(f"nothing is held on {oneid}")
    text = json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    if out is None:
        click.echo(text)
    else:
        out.write_text(text + "\n", encoding="utf-8")


@identity.command("audit")
@click.option("--count", default=20, show_default=True)
@click.pass_obj
def identity_audit(settings: Settings, count: int) -> None:
    """The newest unmerge and deletion audit entries."""
    for entry in _graph(settings).audit_log(count):
        click.echo(json.dumps(entry))


@cli.group()
def audit() -> None:
    """Who read whose personal data through the API."""


@audit.command("reads")
@click.option("--count", default=20, show_default=True)
@click.pass_obj
def audit_reads(settings: Settings, count: int) -> None:
    """The newest reads of a person (profile, identity, triggers), newest first, as JSON lines."""
    from apps import factory
    from touchstream.audit import recent_reads

    for entry in recent_reads(factory.redis_client(settings), settings.redis_prefix, count):
        click.echo(json.dumps(entry))


@cli.group()
def webhooks() -> None:
    """Webhook sink: deliver real-time triggers to downstream HTTP services."""


def _webhook_config_option(func):  # type: ignore[no-untyped-def]
    return click.option(
        "--config", "config_path", required=True,
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Webhook config YAML (endpoints, secrets, rules); keep it chmod 600.",
    )(func)


@webhooks.command("run")
@_webhook_config_option
@click.option("--stop-after-idle", type=float, default=None,
              help="Stop after this many seconds without a trigger (default: run until SIGTERM).")
@click.pass_obj
def webhooks_run(settings: Settings, config_path: Path, stop_after_idle: float | None) -> None:
    """Deliver triggers from <prefix>.triggers to the configured endpoints, exactly once in effect."""
    from apps import factory
    from connectors.webhook import run_webhook_sink

    try:
        stats = run_webhook_sink(settings, config_path, stop_after_idle_s=stop_after_idle,
                                 metrics_port=settings.webhook_metrics_port or None,
                                 readiness=factory.readiness_checks(settings, factory.redis_client(settings)))
    except TouchstreamError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(stats.render(), err=True)


@webhooks.command("check")
@_webhook_config_option
def webhooks_check(config_path: Path) -> None:
    """Validate a webhook config and list its endpoints and rules (never the secrets)."""
    from connectors.webhook import load_config

    try:
        config = load_config(config_path)
    except TouchstreamError as exc:
        raise click.ClickException(str(exc)) from None
    for endpoint in config.endpoints:
        click.echo(f"{endpoint.name}\t{endpoint.url}\trules={','.join(sorted(endpoint.rules))}\t"
                   f"timeout={endpoint.timeout_s:g}s\tmax_attempts={endpoint.max_attempts}")


@cli.group()
def lake() -> None:
    """The Parquet lake: the sink that writes it, compaction, the profile snapshot."""


@lake.command("run")
@click.option("--stop-after-idle", type=float, default=None,
              help="Stop after this many seconds without a record (default: run until SIGTERM).")
@click.pass_obj
def lake_run(settings: Settings, stop_after_idle: float | None) -> None:
    """Write resolved events, merges, rejections and triggers to the lake, exactly once per offset."""
    from apps import factory
    from connectors.lake import run_lake_sink

    try:
        client = factory.redis_client(settings)
        stats = run_lake_sink(factory.lake_config(settings), stop_after_idle_s=stop_after_idle,
                              readiness=factory.readiness_checks(settings, client),
                              keep=factory.lake_roll_filter(settings, client))
    except TouchstreamError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(stats.render(), err=True)


@lake.command("compact")
@click.option("--table", type=click.Choice(["events", "merges", "rejections", "triggers", "segments"]),
              default=None,
              help="Only this table (default: all).")
@click.option("--small-mb", type=float, default=None,
              help="Files under this size are merged (default: half of TOUCHSTREAM_LAKE_ROLL_BYTES).")
@click.option("--min-files", default=2, show_default=True, help="Merge runs of at least this many files.")
@click.pass_obj
def lake_compact(settings: Settings, table: str | None, small_mb: float | None, min_files: int) -> None:
    """Merge small files of each date folder and topic partition (rows unchanged, atomic)."""
    from apps import factory
    from connectors.lake.compact import compact

    config = factory.lake_config(settings)
    small = int(small_mb * 1024 * 1024) if small_mb is not None else config.roll_bytes // 2
    try:
        done = compact(config.path, small_bytes=small, min_files=min_files, table=table,
                       spool=config.spool_path)
    except TouchstreamError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(done.render())


@lake.command("snapshot")
@click.pass_obj
def lake_snapshot(settings: Settings) -> None:
    """Export the profile state of every survivor OneID in the lake to profiles/snapshot.parquet."""
    from apps import factory
    from connectors.lake.query import connect, survivors
    from connectors.lake.snapshot import snapshot_profiles

    config = factory.lake_config(settings)
    try:
        oneids = survivors(connect(config.path))
    except TouchstreamError as exc:
        raise click.ClickException(str(exc)) from None
    store = factory.profile_store(settings, factory.redis_client(settings))
    written = snapshot_profiles(config.path, oneids, store.get_profile)
    click.echo(f"{written} profile(s) of {len(oneids)} OneID(s) written to the profiles snapshot")


def _when_ms(text: str | None) -> int:
    """Epoch milliseconds, or an ISO 8601 time with its zone; now when not given."""
    import time
    from datetime import datetime

    if text is None:
        return time.time_ns() // 1_000_000
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is neither epoch ms nor an ISO 8601 time") from None
    if when.tzinfo is None:
        raise click.BadParameter("give the time zone (e.g. 2024-05-01T00:00:00+08:00)")
    return int(when.timestamp() * 1000)


def _history_store(settings: Settings, rules: Path | None):  # type: ignore[no-untyped-def]
    """The profile store reading with ``rules`` (default: the configured rules), and the lake."""
    from dataclasses import replace

    from apps import factory
    from connectors.lake.query import connect

    if rules is not None:
        settings = replace(settings, profile_rules_path=str(rules))
    try:
        store = factory.profile_store(settings, factory.redis_client(settings))
        return store, store.ruleset.current(), connect(factory.lake_config(settings).path)
    except TouchstreamError as exc:
        raise click.ClickException(str(exc)) from None


@cli.command("verify")
@click.option("--as-of", default=None, help="Epoch ms or ISO 8601 time to compare at (default: now).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="json: one object per difference, then a summary object.")
@click.option("--rules", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A profile rules file (default: TOUCHSTREAM_PROFILE_RULES_PATH or the shipped rules).")
@click.option("--aggregate", "aggregates", multiple=True, metavar="NAME",
              help="Only these aggregates (repeat); default: every aggregate, tags, score and tier.")
@click.pass_context
def verify(ctx: click.Context, as_of: str | None, fmt: str, rules: Path | None,
           aggregates: tuple[str, ...]) -> None:
    """Recompute aggregates, tags, score and tier from the lake and compare with live profiles; exit 1
    on any difference. Run it when the lake has caught up with the stream."""
    from analytics.history import verify as run_verify

    settings: Settings = ctx.obj
    store, compiled, con = _history_store(settings, rules)
    unknown = sorted(set(aggregates) - set(compiled.aggregates))
    if unknown:
        raise click.BadParameter(f"no aggregate {', '.join(unknown)} in the rules", param_hint="--aggregate")
    report = run_verify(con, compiled, store.get_profiles, _when_ms(as_of),
                        skew_ms=settings.event_time_skew_s * 1000, aggregates=aggregates or None,
                        with_tags=not aggregates, with_score=not aggregates)
    click.echo(report.render_json() if fmt == "json" else report.render_table(), nl=False)
    if not report.ok:
        ctx.exit(1)


@cli.command("backfill")
@click.option("--aggregate", default=None, metavar="NAME", help="Seed this aggregate from history.")
@click.option("--tag", default=None, metavar="NAME", help="Seed this tag rule's tags from history.")
@click.option("--rules", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The profile rules file holding the rule (default: the configured rules).")
@click.pass_context
def backfill(ctx: click.Context, aggregate: str | None, tag: str | None, rules: Path | None) -> None:
    """Seed a newly added aggregate or tag rule from the lake's history into the live profiles
    (idempotent; events the stream already counted are not counted again). Exit 1 if some profiles
    could not be seeded yet (the lake is behind them): run it again."""
    from analytics.history.backfill import backfill_aggregate, backfill_tag

    settings: Settings = ctx.obj
    if (aggregate is None) == (tag is None):
        raise click.UsageError("give exactly one of --aggregate NAME and --tag NAME")
    store, compiled, con = _history_store(settings, rules)
    skew_ms = settings.event_time_skew_s * 1000
    if aggregate is not None:
        if aggregate not in compiled.aggregates:
            raise click.BadParameter(f"no aggregate {aggregate} in the rules", param_hint="--aggregate")
        report = backfill_aggregate(con, compiled, aggregate, store, skew_ms=skew_ms)
    else:
        if tag not in {t.rule for t in compiled.tags}:
            raise click.BadParameter(f"no tag rule {tag} in the rules", param_hint="--tag")
        try:
            report = backfill_tag(con, compiled, str(tag), store, now_ms=_when_ms(None), skew_ms=skew_ms)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(report.render(), nl=False)
    if not report.complete:
        ctx.exit(1)


@cli.command("sql")
@click.argument("query")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "parquet"]), default="table",
              show_default=True, help="json: one object per line.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write here instead of stdout.")
@click.pass_obj
def sql(settings: Settings, query: str, fmt: str, out: Path | None) -> None:
    """Query the lake with DuckDB: events, identities, merges, triggers, rejections, segments, profiles."""
    from apps import factory
    from connectors.lake.query import connect, run_query, write_result

    try:
        result = run_query(connect(factory.lake_config(settings).path), query)
    except TouchstreamError as exc:
        raise click.ClickException(str(exc)) from None
    if out is None:
        write_result(result, fmt, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    with open(out, "wb") as target:
        write_result(result, fmt, target)


def _lake_connection(settings: Settings):  # type: ignore[no-untyped-def]
    from apps import factory
    from connectors.lake.query import connect

    return connect(factory.lake_config(settings).path)


def _duration_ms(value: str, option: str) -> int:
    from profiles.durations import parse_duration

    try:
        ms = parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None
    if ms <= 0:
        raise click.BadParameter("must be longer than 0", param_hint=option)
    return ms


def _conversion(event: str, revenue_fields: tuple[str, ...]):  # type: ignore[no-untyped-def]
    from analytics.touches import Conversion

    try:
        return Conversion(event, revenue_fields or Conversion().revenue_fields)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--revenue-field") from None


def _print_result(result, fmt: str) -> None:  # type: ignore[no-untyped-def]
    """A result on stdout; the table format with money and credits to two decimals."""
    from analytics.attribution import rounded
    from connectors.lake.query import write_result

    write_result(rounded(result) if fmt == "table" else result, fmt, sys.stdout.buffer)
    sys.stdout.buffer.flush()


_CONVERSION_OPTION = click.option("--conversion", default="Order Completed", show_default=True,
                                  help="The track event that counts as a conversion (lead events too).")
_REVENUE_OPTION = click.option("--revenue-field", "revenue_fields", multiple=True, metavar="PROPERTY",
                               help="Property holding the revenue, tried in order (repeat; default: "
                                    "revenue, then total).")


@cli.command("attribution")
@_CONVERSION_OPTION
@_REVENUE_OPTION
@click.option("--by", type=click.Choice(["channel", "campaign"]), default="channel", show_default=True)
@click.option("--lookback", default="30d", show_default=True,
              help="Touches this long before a conversion count.")
@click.option("--half-life", default="7d", show_default=True, help="The time-decay model's half-life.")
@click.option("--rules", "rules_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Channel rules YAML (default: analytics/default_channels.yaml).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True)
@click.pass_obj
def attribution_(settings: Settings, conversion: str, revenue_fields: tuple[str, ...], by: str, lookback: str,
                 half_life: str, rules_path: Path | None, fmt: str) -> None:
    """Conversions and revenue per channel or campaign under every model, side by side: first,
    last, linear, U-shaped, time decay, Markov (data-driven); (none): conversions without a touch."""
    from analytics.attribution import AttributionOptions, attribution, measure
    from analytics.channels import load_channel_rules

    try:
        options = AttributionOptions(_conversion(conversion, revenue_fields), by,
                                     _duration_ms(lookback, "--lookback"),
                                     _duration_ms(half_life, "--half-life"), load_channel_rules(rules_path))
        result = attribution(_lake_connection(settings), options)
    except TouchstreamError as exc:
        raise click.ClickException(str(exc)) from None
    if fmt != "table":
        _print_result(result, fmt)
        return
    for what in ("conversions", "revenue"):
        click.echo(f"{what.capitalize()} of {conversion!r} by {by}, per model (lookback {lookback}):")
        _print_result(measure(result, what), fmt)


@cli.command("rfm")
@_CONVERSION_OPTION
@_REVENUE_OPTION
@click.option("--every", type=click.FloatRange(min=1), default=None, metavar="SECONDS",
              help="Run again every SECONDS until stopped (default: once).")
@click.option("--dry-run", is_flag=True, help="Compute and print; send no traits to profiles.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True)
@click.pass_obj
def rfm_(settings: Settings, conversion: str, revenue_fields: tuple[str, ...], every: float | None,
         dry_run: bool, fmt: str) -> None:
    """RFM scores and segments from the lake's orders; profiles get rfm_segment and rfm_score
    (identify events through the profile stage, only for people whose values changed)."""
    import time

    from confluent_kafka import KafkaException

    from apps.rfm_job import run_rfm

    options = _conversion(conversion, revenue_fields)
    while True:
        try:
            counts, sent = run_rfm(settings, options, send=not dry_run)
        except (TouchstreamError, KafkaException) as exc:
            if every is None:
                raise click.ClickException(str(exc)) from None
            # on a schedule a broker outage costs one run: what was not sent is sent by the next
            click.echo(f"rfm: this run failed ({exc}); trying again in {every:g} s", err=True)
        else:
            _print_result(counts, fmt)
            done = f"{sent} profile(s) updated" if not dry_run else "dry run, no profile updated"
            click.echo(f"rfm: {done}", err=True)
        if every is None:
            return
        time.sleep(every)


for _command in analytics_cli.COMMANDS:  # funnel, retention, activation, score-bands, report
    cli.add_command(_command)


@cli.group()
def segment() -> None:
    """Segments (audiences): list, count and export members; refresh the SQL segments from the lake."""


def _segment_store(settings: Settings):  # type: ignore[no-untyped-def]
    from apps import factory

    return factory.profile_store(settings, factory.redis_client(settings))


def _segment_rule(store, name: str):  # type: ignore[no-untyped-def]
    """The rule of a segment of the rules (or, for one removed from them, a stand-in)."""
    from profiles.rules import SegmentRule

    rule = store.ruleset.current().segments.get(name)
    if rule is None and name not in store.segment_versions():
        raise click.ClickException(f"no segment named {name!r} (touchstream segment list)")
    return rule or SegmentRule(name, None, None)


@segment.command("list")
@click.pass_obj
def segment_list(settings: Settings) -> None:
    """Every segment: its kind (stream: `if:`, sql: `sql:`), members now, changes so far."""
    import pyarrow as pa

    from analytics.segments import list_segments
    from connectors.lake.query import write_result

    store = _segment_store(settings)
    rows = [{"segment": s.name, "kind": s.kind, "members": s.members, "changes": s.version,
             "description": s.description} for s in list_segments(store, store.ruleset.current())]
    names = ["segment", "kind", "members", "changes", "description"]
    write_result(pa.Table.from_pylist(rows) if rows else pa.table({n: [] for n in names}), "table",
                 sys.stdout.buffer)
    sys.stdout.buffer.flush()


@segment.command("count")
@click.argument("name")
@click.pass_obj
def segment_count(settings: Settings, name: str) -> None:
    """How many people are in segment NAME now."""
    from analytics.segments import count_members

    store = _segment_store(settings)
    click.echo(count_members(store, _segment_rule(store, name).name))


@segment.command("export")
@click.argument("name")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write here instead of stdout.")
@click.option("--purpose", default=None,
              help="Only members who allow this consent purpose (default: the segment's own purpose:).")
@click.pass_obj
def segment_export(settings: Settings, name: str, fmt: str, out: Path | None, purpose: str | None) -> None:
    """The members of segment NAME with their profile (score, tier, tags, traits, ...)."""
    from analytics.segments import export_members
    from connectors.lake.query import write_result

    store = _segment_store(settings)
    known = store.ruleset.current().purposes
    if purpose is not None and purpose not in known:
        raise click.ClickException(f"unknown consent purpose {purpose!r}; one of {', '.join(sorted(known))}")
    table = export_members(store, _segment_rule(store, name), purpose=purpose)
    if out is None:
        write_result(table, fmt, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    else:
        with open(out, "wb") as target:
            write_result(table, fmt, target)
    click.echo(f"{table.num_rows} member(s) of {name}", err=True)


@segment.command("refresh")
@click.argument("names", nargs=-1)
@click.option("--every", type=click.FloatRange(min=1), default=None,
              help="Refresh again every SECONDS until stopped (SIGTERM); default: once.")
@click.pass_obj
def segment_refresh(settings: Settings, names: tuple[str, ...], every: float | None) -> None:
    """Evaluate SQL segments (all, or NAMES) over the lake; record who entered and who left."""
    import signal
    import threading

    from analytics.segments import refresh_all
    from apps import factory
    from connectors.lake.query import connect

    client = factory.redis_client(settings)
    store = factory.profile_store(settings, client)
    publisher = factory.segment_publisher(settings, client)
    root = factory.lake_config(settings).path
    stop = threading.Event()
    if every is not None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    while True:
        try:
            outcomes = refresh_all(store, connect(root), store.ruleset.current(), publisher, names)
            for outcome in outcomes:
                click.echo(outcome.render())
            if not outcomes:
                click.echo("no SQL segment in the rules (`sql:` under segments:)", err=True)
        except TouchstreamError as exc:
            if every is None:
                raise click.ClickException(str(exc)) from None
            click.echo(f"refresh failed: {exc}", err=True)
        if every is None or stop.wait(every):
            return


@cli.group()
def deadletter() -> None:
    """Inspect and replay dead letters."""


@deadletter.command("list")
@click.option("--limit", default=50, show_default=True)
@click.pass_obj
def deadletter_list(settings: Settings, limit: int) -> None:
    """Show dead letters: where they came from, why, and the first bytes of the original (not for
    letters carrying an erased person)."""
    from apps import factory
    from connectors.deadletter import read_dead_letters
    from streams.erased_letters import skip_erased
    from streams.topics import Topics

    client = factory.redis_client(settings)
    erased = skip_erased(client, settings.redis_prefix, factory.erased_people(settings, client))
    shown = 0
    for stored in read_dead_letters(settings.broker, Topics.of(settings).deadletter):
        r = stored.record
        if erased(stored.partition, stored.offset, r):
            click.echo(f"#{stored.offset} stage={r['stage']} reason={r['reason']} [erased person: not shown]")
            shown += 1
            if shown >= limit:
                break
            continue
        click.echo(f"#{stored.offset} stage={r['stage']} reason={r['reason']} "
                   f"source={r['source_topic']}[{r['partition']}]@{r['offset']} "
                   f"bytes={len(r['original'])} head={r['original'][:24]!r}\n    {r['error']}")
        shown += 1
        if shown >= limit:
            break
    click.echo(f"{shown} dead letter(s) shown", err=True)


@deadletter.command("replay")
@click.option("--stage", default=None, help="Only this stage (collector, resolve, profile, ...).")
@click.option("--reason", default=None, help="Only this reason code.")
@click.pass_obj
def deadletter_replay(settings: Settings, stage: str | None, reason: str | None) -> None:
    """Put dead letters back on their source topic (each at most once; never those carrying an
    erased person)."""
    from apps import factory
    from connectors.deadletter import replay
    from schemas.codec import default_registry
    from streams.claims import Claims
    from streams.erased_letters import skip_erased
    from streams.topics import Topics

    client = factory.redis_client(settings)
    decode_event = default_registry().decoder("event")

    def release_claim(letter: dict) -> None:
        """A record that failed while processing was claimed first: forget that claim."""
        if letter["reason"] == "processing_error" and letter["stage"] in ("resolve", "profile"):
            event = decode_event(letter["original"])
            Claims(client, settings.redis_prefix, letter["stage"], settings.stream_dedup_window_s).release(
                event["source"], event["message_id"])

    count = replay(settings.broker, Topics.of(settings).deadletter, stage=stage, reason=reason,
                   redis_client=client, prefix=settings.redis_prefix, before_send=release_claim,
                   skip=skip_erased(client, settings.redis_prefix, factory.erased_people(settings, client)))
    click.echo(f"replayed {count} dead letter(s)")


@cli.command()
@click.option("--events", default=1_000_000, show_default=True, help="Synthetic events for the pipeline run.")
@click.option("--out", default="bench-results.json", show_default=True, type=click.Path(path_type=Path))
@click.option("--growth", "growth_sizes", default="10000,100000,1000000", show_default=True,
              help="Profile populations of the growth study, comma-separated ('' to skip it).")
@click.option("--lake-sizes", default="1000000", show_default=True,
              help="Events in the synthetic lakes the lake's questions are timed over ('' to skip).")
@click.pass_obj
def bench(settings: Settings, events: int, out: Path, growth_sizes: str, lake_sizes: str) -> None:
    """Measure throughput, latency and memory on the real stack beside baselines from the same run."""
    run_all = _bench_module("report").run_all
    sizes = _sizes(growth_sizes, "--growth")
    logs_dir = Path(".local")
    logs_dir.mkdir(exist_ok=True)
    run_all(settings, events, out, logs_dir, sizes, _sizes(lake_sizes, "--lake-sizes"))


def _sizes(text: str, option: str) -> tuple[int, ...]:
    try:
        return tuple(sorted(int(s) for s in text.split(",") if s.strip()))
    except ValueError:
        raise click.BadParameter("comma-separated whole numbers", param_hint=option) from None


def _bench_module(name: str):  # type: ignore[no-untyped-def]
    """A module of the top-level ``bench/`` folder, which a source checkout has and the wheel not."""
    import importlib

    try:
        return importlib.import_module(f"bench.{name}")
    except ModuleNotFoundError:
        raise click.ClickException("benchmarks run from a source checkout: bench/ is not installed") from None


@cli.command()
@click.option("--events", default=100_000, show_default=True, help="Synthetic events the worker drains.")
@click.pass_obj
def hotspots(settings: Settings, events: int) -> None:
    """Sample one worker with py-spy while it drains synthetic events; print the top frames."""
    logs_dir = Path(".local")
    logs_dir.mkdir(exist_ok=True)
    out = _bench_module("hotspots").run(settings, events, logs_dir)
    click.echo(f"raw samples: {out}")


@cli.command()
@click.option("--events", default=2000, show_default=True, help="How many sample events to send.")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for the pipeline.")
@click.pass_obj
def demo(settings: Settings, events: int, timeout: float) -> None:
    """Run the main job end to end on the local stack and print a summary."""
    from apps.demo import run_demo

    summary = run_demo(settings, events=events, timeout=timeout)
    click.echo(summary.render())
    if not summary.ok:
        sys.exit(1)


def main() -> None:
    cli(prog_name="touchstream")


if __name__ == "__main__":
    main()
