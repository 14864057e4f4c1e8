"""Plain job functions the queue tests enqueue (jobs must be importable by the worker)."""

from __future__ import annotations

import os

from flask import current_app

from outreach.queue import redis


def record_context(key: str) -> None:
    """Store which app and process ran this job, proving it ran inside the app context."""
    redis().hset(key, mapping={"secret": current_app.config["SECRET_KEY"], "pid": os.getpid()})
