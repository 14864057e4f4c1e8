"""Observability: structured logs with request and job context, /metrics, the System page."""

from __future__ import annotations

import re
import uuid
from typing import Any

from flask import Flask, g, request

# An incoming X-Request-ID (from a proxy) is kept when it looks like an id, never echoed raw.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def init_app(app: Flask) -> None:
    """Tag requests with an id, answer scrapes, and register the System page.

    Call before auth.init_app: the request id must exist before the authorization hook logs,
    and a scrape authenticates with its own token, not a staff session.
    """
    from outreach.observability import views

    app.before_request(_start_request)
    app.before_request(views.scrape_if_bearer)
    app.after_request(_tag_response)
    app.register_blueprint(views.bp)


def _start_request() -> None:
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex


def _tag_response(response: Any) -> Any:
    request_id = g.get("request_id")
    if request_id:
        response.headers.setdefault("X-Request-ID", request_id)
    return response
