"""`outreach dev`: everything on one machine, started and stopped together."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import click
import sqlalchemy as sa
from flask import Flask

from outreach import create_app, db
from outreach.accounts import service as accounts
from outreach.accounts.models import User
from outreach.migrate import upgrade
from outreach.queue import start_embedded_redis

DEV_ADMIN_EMAIL = "admin@example.org"


def ensure_dev_admin(instance_path: Path) -> tuple[str, str | None]:
    """Create the demo admin on first run; return its email and password if still known."""
    credentials = instance_path / "dev-admin.txt"
    session = db.session()
    if session.scalar(sa.select(sa.func.count()).select_from(User)) == 0:
        password = secrets.token_urlsafe(12)
        accounts.create_user(session, DEV_ADMIN_EMAIL, "admin", password, "Demo admin")
        session.commit()
        fd = os.open(credentials, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"{DEV_ADMIN_EMAIL}\n{password}\n")
        return DEV_ADMIN_EMAIL, password
    if credentials.exists():
        email, password = credentials.read_text().splitlines()[:2]
        if accounts.authenticate(session, email, password) is not None:
            session.commit()
            return email, password
    return DEV_ADMIN_EMAIL, None


def seed_demo_if_empty(app: Flask, wanted: bool) -> int | None:
    """Seed the demo into an empty database (once); return the demo blast's id if there is one."""
    from outreach.demo import DemoRefused, demo_blast_id, seed_demo
    from outreach.demo.seed import has_data

    with app.app_context():
        empty = not has_data(db.session())
    if wanted and empty:
        click.echo("Seeding the demo (fictitious supporters and one sent blast) ...")
        try:
            summary = seed_demo(app, production_ok=True)
        except DemoRefused:
            summary = None  # the user's own data: the demo stays out of it
        if summary is not None:
            click.echo(f"Seeded the demo: {summary.contacts:,} fictitious supporters and a "
                       f"blast sent to {summary.sent:,} of them (outreach dev --no-demo skips "
                       "this).")
    with app.app_context():
        return demo_blast_id(db.session())


def run_dev(host: str, port: int, worker_count: int, demo: bool = True) -> None:
    """Migrate, start Redis, the web server and workers; stop them all on Ctrl-C."""
    app = create_app()
    instance = Path(app.instance_path)
    redis_server = None
    env = dict(os.environ, OUTREACH_INSTANCE=str(instance), DATABASE_URL=app.config["DATABASE_URL"],
               SECRET_KEY=app.config["SECRET_KEY"], OUTREACH_ENV=app.config["OUTREACH_ENV"],
               PUBLIC_BASE_URL=os.environ.get("PUBLIC_BASE_URL", f"http://{host}:{port}"))
    app.config["PUBLIC_BASE_URL"] = env["PUBLIC_BASE_URL"]  # the demo's links point here
    if not os.environ.get("REDIS_URL"):
        # The app already started the embedded server; the children connect to its socket.
        redis_server = start_embedded_redis(instance)
        env["REDIS_URL"] = f"unix://{redis_server.socket_file}"
    with app.app_context():
        click.echo("Migrating the database ...")
        upgrade(app)
        email, password = ensure_dev_admin(instance)
    demo_blast = seed_demo_if_empty(app, demo)
    children: list[subprocess.Popen[bytes]] = []

    def stop(*_: object) -> None:
        for child in children:
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + 10
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
        if redis_server is not None:
            try:
                redis_server.shutdown(nosave=True)
            except Exception:  # noqa: BLE001 - the server closes the connection as it exits
                pass

    def on_sigterm(*_: object) -> None:
        raise KeyboardInterrupt  # stop as Ctrl-C does

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        for _ in range(worker_count):
            children.append(subprocess.Popen(
                [sys.executable, "-m", "outreach.cli", "worker"], env=env))
        children.append(subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}", "--workers", "2",
             "--threads", "4", "--graceful-timeout", "5", "--access-logfile", "-",
             "outreach:create_app()"], env=env))
        url = f"http://{host}:{port}"
        _wait_for(f"{url}/healthz", children)
        click.echo("")
        click.echo(f"  outreach is running at {url}")
        if password:
            click.echo(f"  Sign in as {email} with password {password}")
        else:
            click.echo(f"  Sign in with your staff account (the demo admin is {email}).")
        if demo_blast is not None:
            click.echo(f"  Then open {url}/blasts/{demo_blast}/metrics: the demo blast's "
                       "deliveries, opens and clicks.")
        click.echo("  Press Ctrl-C to stop the web server, the worker and Redis.")
        click.echo("")
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        raise click.ClickException("a child process exited; stopping everything")
    except KeyboardInterrupt:
        click.echo("\nStopping ...")
    finally:
        stop()


def _wait_for(url: str, children: list[subprocess.Popen[bytes]], timeout: float = 60) -> None:
    """Wait until the web server answers its health check."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(child.poll() is not None for child in children):
            raise click.ClickException("a child process exited during start-up")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback only
                return
        except OSError:
            time.sleep(0.3)
    raise click.ClickException(f"the web server did not answer {url} within {timeout:.0f} s")
