"""The ``touchstream`` command line (click, which Faust already brings)."""

from __future__ import annotations

import sys

import click

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
    ctx.obj = settings


@cli.group()
def topics() -> None:
    """Kafka topics of the platform."""


@topics.command("create")
@click.pass_obj
def topics_create(settings: Settings) -> None:
    """Create every topic that does not exist yet (idempotent)."""
    from streams.topics import create_topics

    for name, outcome in sorted(create_topics(settings).items()):
        click.echo(f"{name}: {outcome}")


@cli.command()
@click.pass_obj
def worker(settings: Settings) -> None:
    """Run a stream worker (Faust) until stopped."""
    from streams.app import run_worker

    run_worker(settings)


@cli.command()
@click.option("--events", default=2000, show_default=True, help="How many sample events to send.")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for the pipeline.")
@click.pass_obj
def demo(settings: Settings, events: int, timeout: float) -> None:
    """Run the main job end to end on the local stack and print a summary."""
    from touchstream.demo import run_demo

    summary = run_demo(settings, events=events, timeout=timeout)
    click.echo(summary.render())
    if not summary.ok:
        sys.exit(1)


def main() -> None:
    cli(prog_name="touchstream")


if __name__ == "__main__":
    main()
