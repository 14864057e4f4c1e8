"""The blast pages: draft with audience count, launch with confirmation, progress, actions."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from outreach import db
from outreach.blasts.models import Blast, Message
from outreach.channels.models import OutboxEmail, OutboxSms
from outreach.db import utcnow
from tests.fixtures.app import csrf_token, run_jobs
from tests.fixtures.blasts import (
    audience,
    blast_state,
    count,
    email_template,
    launch_blast,
    send_all,
    sms_template,
)


def _post(client, path, data=None, form_page="/blasts"):
    return client.post(path, data={"csrf_token": csrf_token(client, form_page), **(data or {})})


def _form(template_id, list_ids, **extra):
    return {"name": "Rally", "channel": "email", "template_id": str(template_id),
            "list_ids": [str(i) for i in list_ids], "schedule": "now", **extra}


def _create(client, template_id, list_ids, **extra):
    response = _post(client, "/blasts/new", _form(template_id, list_ids, **extra),
                     "/blasts/new")
    assert response.status_code == 302, response.text
    return int(re.search(r"/blasts/(\d+)$", response.headers["Location"]).group(1))


def _flash(client, response):
    return client.get(response.headers["Location"]).text


def test_draft_from_the_page_then_launch_with_confirmation(app, auth, client):
    list_id = audience(app, 5)
    other = audience(app, 2, list_name="Donors", start=10)
    template_id = email_template(app)
    auth.login("organizer")
    form = client.get("/blasts/new").text
    assert "Alert (v1)" in form and "Rally" in form and "in UTC" in form
    blast_id = _create(client, template_id, [list_id], exclude_list_ids=[str(other)])
    page = client.get(f"/blasts/{blast_id}").text
    assert 'id="audience-count">5<' in page and "Recount" in page
    assert "badge-draft" in page
    assert client.get(f"/blasts/{blast_id}?recount=1").status_code == 200
    confirm = client.get(f"/blasts/{blast_id}/launch").text
    assert "This will send to <strong>5</strong> people" in confirm
    assert client.post(f"/blasts/{blast_id}/launch").status_code == 400  # no CSRF token
    response = _post(client, f"/blasts/{blast_id}/launch", form_page=f"/blasts/{blast_id}/launch")
    assert response.status_code == 302
    running = _flash(client, response)
    assert "Launched" in running and 'data-status-url="/blasts/' in running
    assert "js/blast-progress.js" in running and 'http-equiv="refresh"' in running
    state = send_all(app, blast_id)
    assert state["status"] == "done" and state["counts"]["sent"] == 5
    done = client.get(f"/blasts/{blast_id}").text
    assert '<strong data-count="sent">5</strong>' in done
    assert '<strong data-count="queued">0</strong>' in done
    assert "5 of 5 messages handled (100%)" in done and "data-status-url" not in done
    assert "/templates/" in done and "version 1" in done
    listing = client.get("/blasts").text
    assert "Rally" in listing and "badge-done" in listing and "5 of 5" in listing
    status = client.get(f"/blasts/{blast_id}/status.json").json
    assert status["status"] == "done" and status["active"] is False
    assert status["counts"]["sent"] == 5 and status["counts"]["percent"] == 100
    with app.app_context():
        assert count(app, OutboxEmail) == 5


def test_form_errors_are_shown_next_to_the_fields(app, auth, client):
    audience(app, 1)
    template_id = email_template(app)
    auth.login("organizer")
    response = _post(client, "/blasts/new",
                     {"name": "", "channel": "email", "template_id": str(template_id),
                      "schedule": "at", "send_at": "", "throttle_per_minute": "lots"},
                     "/blasts/new")
    assert response.status_code == 422
    page = response.text
    for field in ("name", "list_ids", "send_at", "throttle_per_minute"):
        assert f'id="{field}-error"' in page, field
    assert "choose at least one list or a segment" in page
    assert count(app, Blast) == 0


def test_window_needs_both_times(app, auth, client):
    list_id = audience(app, 1)
    template_id = email_template(app)
    auth.login("organizer")
    response = _post(client, "/blasts/new", _form(template_id, [list_id], schedule="window",
                                                   window_start="", window_end="12:00"),
                     "/blasts/new")
    assert response.status_code == 422 and 'id="window-error"' in response.text
    blast_id = _create(client, template_id, [list_id], schedule="window",
                       window_start="09:30", window_end="11:00")
    assert blast_state(app, blast_id)["window"] == {"start": "09:30", "end": "11:00"}


def test_template_select_is_filtered_by_channel(app, auth, client):
    email_template(app, name="Mail one")
    sms_template(app, name="Text one")
    auth.login("organizer")
    email_form = client.get("/blasts/new").text
    assert "Mail one" in email_form and "Text one" not in email_form
    sms_form = client.get("/blasts/new?channel=sms").text
    assert "Text one" in sms_form and "Mail one" not in sms_form


def test_scheduled_an_hour_ahead_sends_nothing_yet(app, auth, client):
    list_id = audience(app, 3)
    template_id = email_template(app)
    auth.login("organizer")
    at = (utcnow() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    blast_id = _create(client, template_id, [list_id], schedule="at", send_at=at)
    assert blast_state(app, blast_id)["send_at"].startswith(at)
    confirm = client.get(f"/blasts/{blast_id}/launch").text
    assert f"at {at.replace('T', ' ')} UTC" in confirm
    response = _post(client, f"/blasts/{blast_id}/launch", form_page=f"/blasts/{blast_id}/launch")
    assert "Scheduled for" in _flash(client, response)
    state = send_all(app, blast_id)
    assert state["status"] == "scheduled" and state["counts"]["total"] == 0
    assert count(app, OutboxEmail) == 0
    edit = client.get(f"/blasts/{blast_id}/edit")
    assert edit.status_code == 200 and "scheduled again" in edit.text


def test_pause_resume_and_cancel_from_the_page(app, auth, client):
    list_id = audience(app, 4)
    template_id = email_template(app)
    blast_id = launch_blast(app, template_id, [list_id])
    auth.login("organizer")
    page = f"/blasts/{blast_id}"
    response = _post(client, f"{page}/pause", form_page=page)
    paused = _flash(client, response)
    assert "Paused." in paused and "Paused by organizer@example.org" in paused
    assert "Resume" in paused
    assert "Paused by organizer@example.org" in client.get("/blasts").text
    run_jobs(app)
    assert count(app, OutboxEmail) == 0
    response = _post(client, f"{page}/pause", form_page=page)
    assert "Not paused: A blast that is paused cannot be paused" in _flash(client, response)
    response = _post(client, f"{page}/resume", form_page=page)
    assert "Resumed." in _flash(client, response)
    state = send_all(app, blast_id)
    assert state["status"] == "done" and state["counts"]["sent"] == 4
    response = _post(client, f"{page}/resume", form_page=page)
    assert "Not resumed: A blast that is done cannot be resumed" in _flash(client, response)
    response = _post(client, f"{page}/cancel", form_page=page)
    assert "Not canceled" in _flash(client, response)
    assert "already done" in _flash(client, client.get(f"{page}/cancel"))
    assert "only a draft can be launched" in _flash(client, client.get(f"{page}/launch"))
    assert "only a draft or a scheduled blast" in _flash(client, client.get(f"{page}/edit"))
    response = _post(client, f"{page}/edit", {"name": "Renamed"}, form_page=page)
    assert "Not saved" in _flash(client, response)


def test_cancel_with_confirmation(app, auth, client):
    list_id = audience(app, 3)
    blast_id = launch_blast(app, email_template(app), [list_id])
    auth.login("organizer")
    confirm = client.get(f"/blasts/{blast_id}/cancel")
    assert confirm.status_code == 200 and "cannot be resumed" in confirm.text
    response = _post(client, f"/blasts/{blast_id}/cancel", form_page=f"/blasts/{blast_id}/cancel")
    assert "Canceled." in _flash(client, response)
    run_jobs(app)
    assert blast_state(app, blast_id)["status"] == "canceled"
    assert count(app, OutboxEmail) == 0


def test_edit_a_draft(app, auth, client):
    list_id = audience(app, 2)
    template_id = email_template(app)
    auth.login("organizer")
    blast_id = _create(client, template_id, [list_id])
    form = client.get(f"/blasts/{blast_id}/edit").text
    assert 'value="Rally"' in form
    response = _post(client, f"/blasts/{blast_id}/edit",
                     _form(template_id, [list_id], name="Rally 2", throttle_per_minute="60"),
                     f"/blasts/{blast_id}/edit")
    assert response.status_code == 302
    state = blast_state(app, blast_id)
    assert state["name"] == "Rally 2" and state["throttle_per_minute"] == 60
    bad = _post(client, f"/blasts/{blast_id}/edit", _form(template_id, [], name="x"),
                f"/blasts/{blast_id}/edit")
    assert bad.status_code == 422 and 'id="list_ids-error"' in bad.text
    assert blast_state(app, blast_id)["list_ids"] == [list_id]


def test_sms_blast_from_the_page(app, auth, client):
    pytest.importorskip("outreach.channels.ratelimit")
    app.config.update(SMS_QUIET_START="00:00", SMS_QUIET_END="23:59", SMS_QUIET_END_FL_OK="23:59")
    list_id = audience(app, 3)
    template_id = sms_template(app)
    auth.login("organizer")
    blast_id = _create(client, template_id, [list_id], channel="sms")
    assert 'id="audience-count">3<' in client.get(f"/blasts/{blast_id}").text
    _post(client, f"/blasts/{blast_id}/launch", form_page=f"/blasts/{blast_id}/launch")
    state = send_all(app, blast_id)
    assert state["status"] == "done" and state["counts"]["sent"] == 3
    assert count(app, OutboxSms) == 3


def test_viewer_sees_blasts_but_cannot_act(app, auth, client):
    list_id = audience(app, 2)
    template_id = email_template(app)
    with app.app_context(), db.transaction() as session:
        from outreach.blasts import service

        blast_id = service.save_blast(session, {"name": "Draft", "template_id": template_id,
                                                "list_ids": [list_id]}).id
    auth.login("viewer")
    page = client.get(f"/blasts/{blast_id}")
    assert page.status_code == 200 and "Launch…" not in page.text
    assert client.get("/blasts").status_code == 200
    assert client.get(f"/blasts/{blast_id}/status.json").status_code == 200
    for path in ("/blasts/new", f"/blasts/{blast_id}/edit", f"/blasts/{blast_id}/launch",
                 f"/blasts/{blast_id}/cancel"):
        assert client.get(path).status_code == 403, path
    token = csrf_token(client, "/blasts")
    for path in ("/blasts/new", f"/blasts/{blast_id}/edit", f"/blasts/{blast_id}/launch",
                 f"/blasts/{blast_id}/pause", f"/blasts/{blast_id}/resume",
                 f"/blasts/{blast_id}/cancel"):
        assert client.post(path, data={"csrf_token": token}).status_code == 403, path
    assert blast_state(app, blast_id)["status"] == "draft"
    with app.app_context():
        assert db.session().scalar(sa.select(sa.func.count()).select_from(Message)) == 0


def test_unknown_blast_is_404_and_signed_out_goes_to_login(app, auth, client):
    assert "/login" in client.get("/blasts").headers["Location"]
    auth.login("viewer")
    assert client.get("/blasts/999999").status_code == 404
    assert client.get("/blasts/999999/status.json").status_code == 404
