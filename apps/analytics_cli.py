"""The lake's questions on the command line: ``funnel``, ``retention``, ``activation``,
``score-bands``, ``report``.

Registered on the ``touchstream`` group by ``apps/cli.py``; each opens the lake read-only with
DuckDB (``TOUCHSTREAM_LAKE_PATH``), asks :mod:`analytics` and prints the answer.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from touchstream.errors import TouchstreamError
from touchstream.settings import Settings

if TYPE_CHECKING:  # DuckDB and Arrow load when a command runs, not with every CLI call
    import duckdb
    import pyarrow as pa

FORMATS = ["table", "csv", "json"]


def _format_option(func: Callable[..., None]) -> Callable[..., None]:
    return click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
                        help="json: one object per line.")(func)


def _answer(settings: Settings, ask: Callable[[duckdb.DuckDBPyConnection], pa.Table], fmt: str) -> None:
    """Open the lake, ask, print in ``fmt``; a question that cannot be answered is a clean error."""
    from apps import factory
    from connectors.lake.query import connect, write_result

    try:
        result = ask(connect(factory.lake_config(settings).path))
    except TouchstreamError as exc:
        raise click.ClickException(str(exc)) from None
    write_result(result, fmt, sys.stdout.buffer)
    sys.stdout.buffer.flush()


@click.command("funnel")
@click.argument("steps", nargs=-1, required=True)
@click.option("--window", default="7d", show_default=True, help="From the first step to the last.")
@click.option("--any-order", is_flag=True, help="Steps may happen in any order within the window.")
@click.option("--by", default=None, help="Break down by a property of the first step's event "
              "(utm_source, context.campaign.source, traits.plan, source).")
@_format_option
@click.pass_obj
def funnel_command(settings: Settings, steps: tuple[str, ...], window: str, any_order: bool, by: str | None,
                   fmt: str) -> None:
    """People through STEP... in order within the window: conversion, drop-off, median time.

    A step is a track event name ("Order Completed"), page:NAME, page:/path-prefix, screen:NAME
    or a call type (page, identify, ...).
    """
    from analytics.funnels import funnel

    _answer(settings, lambda con: funnel(con, steps, window=window, any_order=any_order, by=by).table(), fmt)


@click.command("retention")
@click.option("--weeks", default=8, show_default=True, help="Weeks after the first activity.")
@_format_option
@click.pass_obj
def retention_command(settings: Settings, weeks: int, fmt: str) -> None:
    """Weekly cohorts by first activity: the share active on or after each later week."""
    from analytics.retention import retention

    def ask(con: duckdb.DuckDBPyConnection) -> pa.Table:
        result = retention(con, weeks=weeks)
        return result.grid() if fmt == "table" else result.table()
    _answer(settings, ask, fmt)


@click.command("activation")
@click.option("--window", default="30d", show_default=True, help="How recent a touch counts.")
@_format_option
@click.pass_obj
def activation_command(settings: Settings, window: str, fmt: str) -> None:
    """Profiles touched by a trigger or tag lately (activated) and the dormant rest.

    Reads the profiles snapshot: run `touchstream lake snapshot` first.
    """
    from analytics.activation import activation

    _answer(settings, lambda con: activation(con, window=window).table(), fmt)


@click.command("score-bands")
@click.option("--conversion", default="Order Completed", show_default=True,
              help="The event that converts (a funnel step spelling).")
@_format_option
@click.pass_obj
def score_bands_command(settings: Settings, conversion: str, fmt: str) -> None:
    """Is the lead score predictive? Leads and conversions per score band, the bands being the
    thresholds of the profile rules' score_crossed triggers."""
    from analytics.predictiveness import predictiveness, score_thresholds
    from apps import factory

    thresholds = score_thresholds(factory.profile_rules(settings).current())
    _answer(settings, lambda con: predictiveness(con, thresholds, conversion=conversion).table(), fmt)


@click.command("report")
@click.option("--out", required=True, type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="The HTML file to write (self-contained: opens offline).")
@click.option("--funnel", "funnel_steps", multiple=True, metavar="STEP",
              help="A funnel step (repeat, in order; default: page, Product Viewed, Order Completed).")
@click.option("--window", default="7d", show_default=True, help="The funnel's window.")
@click.option("--weeks", default=8, show_default=True, help="Retention weeks.")
@click.option("--conversion", default="Order Completed", show_default=True,
              help="The track event that converts (attribution, RFM, score bands).")
@click.pass_obj
def report_command(settings: Settings, out: Path, funnel_steps: tuple[str, ...], window: str, weeks: int,
                   conversion: str) -> None:
    """One HTML file with attribution by model, the RFM grid, the funnel, retention, triggers over
    time, activation and lead-score bands, each chart beside its numbers."""
    from analytics.attribution import AttributionOptions
    from analytics.predictiveness import score_thresholds
    from analytics.report import DEFAULT_FUNNEL, ReportOptions, write_report
    from analytics.touches import Conversion
    from apps import factory
    from connectors.lake.query import connect

    try:
        options = ReportOptions(funnel_steps=funnel_steps or DEFAULT_FUNNEL, funnel_window=window,
                                retention_weeks=weeks, conversion=conversion,
                                thresholds=score_thresholds(factory.profile_rules(settings).current()),
                                attribution=AttributionOptions(Conversion(conversion)))
        sections = write_report(connect(factory.lake_config(settings).path), out, options)
    except TouchstreamError as exc:
        raise click.ClickException(str(exc)) from None
    for section in sections:
        if section.unavailable is not None:
            click.echo(f"report: {section.title}: not available: {section.unavailable}", err=True)
    drawn = sum(section.unavailable is None for section in sections)
    click.echo(f"report: {out} ({drawn} of {len(sections)} sections drawn)")


COMMANDS = (funnel_command, retention_command, activation_command, score_bands_command, report_command)
