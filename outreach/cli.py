"""The `outreach` command: a Flask CLI group with the contract's commands."""

from __future__ import annotations

import os
import sys

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from outreach import create_app, db
from outreach.accounts import service as accounts
from outreach.exceptions import Conflict, NotFound, ValidationError


def _make_app():  # noqa: ANN202 - FlaskGroup's factory hook
    return create_app()


main = FlaskGroup(create_app=_make_app, add_default_commands=True, help=(
    "outreach: email and SMS campaigns for advocacy organizations.\n\n"
    "Configuration comes from the environment (and a .env file); see the README."))


@main.group("db")
def db_group() -> None:
    """Database schema migrations."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Migrate the database to the newest schema (or REVISION)."""
    from outreach.migrate import upgrade

    upgrade(current_app, revision)
    click.echo(f"Database is at {revision}.")


@db_group.command("downgrade")
@click.argument("revision")
@with_appcontext
def db_downgrade(revision: str) -> None:
    """Migrate the database down to REVISION."""
    from outreach.migrate import downgrade

    downgrade(current_app, revision)
    click.echo(f"Database is at {revision}.")


@main.group("users")
def users_group() -> None:
    """Staff accounts."""


@users_group.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(["admin", "organizer", "viewer"]), required=True)
@click.option("--name", default="", help="Display name.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@with_appcontext
def users_create(email: str, role: str, name: str, password_stdin: bool) -> None:
    """Create a staff user with a ROLE; the password comes from a prompt or stdin."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        with db.transaction() as session:
            user = accounts.create_user(session, email, role, password, name)
    except (ValidationError, Conflict) as exc:
        details = "; ".join(f"{k}: {v}" for k, v in getattr(exc, "fields", {}).items())
        raise click.ClickException(f"{exc}{' (' + details + ')' if details else ''}") from None
    click.echo(f"Created {user.role} {user.email}.")


@main.group("tokens")
def tokens_group() -> None:
    """API tokens."""


@tokens_group.command("create")
@click.argument("email")
@click.option("--name", default="cli", help="A label to recognise the token by.")
@with_appcontext
def tokens_create(email: str, name: str) -> None:
    """Create an API token for the user EMAIL and print it (it is shown only once)."""
    try:
        with db.transaction() as session:
            token = accounts.create_token(session, accounts.get_user_by_email(session, email), name)
    except NotFound as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(token)


@main.command("worker")
@click.option("--queues", default=None, help="Comma-separated queues (default: all).")
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.option("--no-scheduler", is_flag=True, help="Do not run RQ's scheduler in this worker.")
@click.option("--fork", is_flag=True,
              help="Run each job in a forked work horse (RQ's default) instead of in-process.")
@with_appcontext
def worker(queues: str | None, burst: bool, no_scheduler: bool, fork: bool) -> None:
    """Run an RQ worker on every queue, with the scheduler for timed jobs."""
    from outreach.blasts.pipeline import schedule_reconciler
    from outreach.queue import QUEUES
    from outreach.workers import run_worker

    names = [q.strip() for q in queues.split(",")] if queues else list(QUEUES)
    lower_priority(int(current_app.config.get("WORKER_NICE") or 0))
    _warm_up(current_app._get_current_object())  # type: ignore[attr-defined]
    if not burst:
        schedule_reconciler()  # crash repair runs every minute while any worker runs
    # In-process by default: a horse per job costs a fork, a new database connection and cold
    # caches (compiled SQL and templates) for every batch of 1000. Jobs are crash-safe either
    # way: a killed worker leaves claimed rows that the reconciler reports as unknown.
    # run_worker also outlives Redis restarts and re-schedules a reconciler lost with Redis.
    run_worker(current_app._get_current_object(), names,  # type: ignore[attr-defined]
               burst=burst, with_scheduler=not no_scheduler, simple=not fork,
               logging_level="INFO")


def lower_priority(nice: int) -> None:
    """Let the web process go first when the machine is busy (WORKER_NICE, 0 to 19).

    A blast keeps every core busy; staff pages served at the same priority would queue behind
    its batches. At nice 10 the kernel gives a worker about a tenth of the CPU a page needs
    when both want it, and all of an idle machine otherwise, so blasts lose little speed.
    """
    if nice > 0:
        os.nice(min(nice, 19))


def _warm_up(app: Flask) -> None:
    """Import the send path and build the channels once, before RQ forks a horse per job."""
    from outreach.blasts import pipeline, sending  # noqa: F401 - loaded for the forks
    from outreach.channels import email_channel, sms_channel
    from outreach.exceptions import ConfigurationError

    for build in (email_channel, sms_channel):
        try:
            build(app)
        except ConfigurationError as exc:
            click.echo(f"warning: {exc}", err=True)  # jobs on that channel will fail loudly


@main.command("dev")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="Worker processes.")
@click.option("--no-demo", is_flag=True, help="Do not seed the demo into an empty database.")
def dev(host: str, port: int, workers: int, no_demo: bool) -> None:
    """The embedded all-in-one: migrate, Redis, web server and worker; Ctrl-C stops all."""
    from outreach.devserver import run_dev

    run_dev(host, port, workers, demo=not no_demo)


@main.group("demo")
def demo_group() -> None:
    """The demo data a newcomer sees (fictitious supporters and one finished blast)."""


@demo_group.command("seed")
@click.option("--force", is_flag=True,
              help="Seed even if the database holds other data or OUTREACH_ENV is production.")
@with_appcontext
def demo_seed(force: bool) -> None:
    """Seed the demo once into an empty database (a second run does nothing)."""
    from outreach.demo import DemoRefused, seed_demo

    try:
        summary = seed_demo(current_app._get_current_object(), force=force)  # type: ignore[attr-defined]
    except DemoRefused as exc:
        raise click.ClickException(str(exc)) from None
    if summary is None:
        click.echo("The demo is already there; nothing to do.")
        return
    click.echo(f"Seeded the demo: {summary.contacts:,} fictitious supporters, blast "
               f"#{summary.blast_id} sent to {summary.sent:,} ({summary.events:,} provider "
               f"events, {summary.unsubscribed} unsubscribes), action page /a/{summary.page_slug} "
               f"with {summary.signatures} signatures.")


def _add_domain_commands() -> None:
    """Attach the command groups that domain packages contribute."""
    from outreach.contacts.cli import contacts
    from outreach.emulators.cli import emulators

    main.add_command(contacts)
    main.add_command(emulators)


_add_domain_commands()

if __name__ == "__main__":
    main()
