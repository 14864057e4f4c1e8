"""The `/metrics` scrape (bearer METRICS_TOKEN) and the staff System page (`/system`)."""

from __future__ import annotations

import hmac
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)

from outreach import db
from outreach.accounts.models import Role
from outreach.auth import current_user, requires
from outreach.observability import exposition, logs, queues
from outreach.queue import QUEUES, redis

bp = Blueprint("system", __name__)
SCRAPE_PATH = "/metrics"
REFRESH_SECONDS = 10


def scrape_if_bearer() -> Any:
    """Answer a Prometheus scrape of /metrics; leave other requests to their views.

    /metrics is also the staff Metrics page. A request carrying `Authorization: Bearer` is a
    scrape (browsers never send one), so the two share the path Prometheus expects by default.
    Scraping is off (404) until METRICS_TOKEN is set; a wrong token gets 403.
    """
    if request.path != SCRAPE_PATH or request.method not in ("GET", "HEAD"):
        return None
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    expected = current_app.config.get("METRICS_TOKEN")
    if not expected:
        return Response("Not found: set METRICS_TOKEN to enable scraping.\n", status=404,
                        mimetype="text/plain")
    # Constant time, so response timing tells nothing about how much of a guess was right.
    if not hmac.compare_digest(token.strip().encode(), str(expected).encode()):
        return Response("Forbidden: wrong metrics token.\n", status=403, mimetype="text/plain")
    body = exposition.render(db.session(), redis())
    return Response(body, content_type=exposition.CONTENT_TYPE,
                    headers={"Cache-Control": "no-store"})


@bp.get("/system")
@requires(Role.ORGANIZER)
def system() -> Any:
    """Queues, workers and failed jobs; refreshes itself every few seconds."""
    client = redis()
    failed = queues.failed_jobs(client)
    for job in failed:
        job.error = logs.redact(job.error)
        job.description = logs.redact(job.description)
    return render_template("system/index.html", queue_names=QUEUES,
                           counts=queues.queue_counts(client), workers=queues.workers(client),
                           failed=failed, refresh=REFRESH_SECONDS,
                           can_requeue=current_user().role_enum.allows(Role.ADMIN))


@bp.post("/system/failed/<job_id>/requeue")
@requires(Role.ADMIN)
def requeue_failed(job_id: str) -> Any:
    """Run a failed job again (jobs are idempotent: a batch sends only what is still queued)."""
    queue = queues.requeue_failed(redis(), job_id)
    if queue is None:
        flash("That job is no longer in the failed list.", "error")
    else:
        flash(f"Job {job_id} is back on the {queue} queue.", "success")
    return redirect(url_for("system.system"))
