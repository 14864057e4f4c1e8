"""The blasts API: the contract's shape, drafts, launch, pause/resume/cancel and their 409s."""

from __future__ import annotations

from datetime import timedelta

import pytest

from outreach.blasts.models import Message
from outreach.channels.models import OutboxEmail, OutboxSms
from outreach.db import utcnow
from outreach.queue import make_worker
from tests.fixtures.app import make_token, run_jobs
from tests.fixtures.blasts import audience, count, email_template, sms_template

READ_FIELDS = {"id", "status", "counts", "name", "channel", "template_id", "list_ids",
               "segment_id", "exclude_list_ids", "send_at", "window"}
COUNT_FIELDS = {"total", "queued", "sending", "sent", "delivered", "bounced", "failed",
                "unknown"}


@pytest.fixture
def api(app, client):
    """Call the API with a token of a role (organizer by default)."""
    tokens: dict[str, str] = {}

    def call(method, path, json=None, role="organizer"):
        if role not in tokens:
            tokens[role] = make_token(app, role)
        return client.open(f"/api/v1{path}", method=method, json=json,
                           headers={"Authorization": f"Bearer {tokens[role]}"})

    return call


def _draft(api, template_id, list_ids, **extra):
    response = api("POST", "/blasts", {"name": "Rally", "channel": "email",
                                       "template_id": template_id, "list_ids": list_ids,
                                       "segment_id": None, "exclude_list_ids": [],
                                       "send_at": None, "window": None, **extra})
    assert response.status_code == 201, response.json
    return response.json


def _run_prepare_only(app):
    make_worker(app, queues=("prepare",), simple=True).work(burst=True,
                                                            logging_level="WARNING")


def test_create_then_launch_then_done(app, api):
    list_id = audience(app, 5)
    other = audience(app, 2, list_name="Staff", start=3)  # p3 and p4 are in both
    template_id = email_template(app)
    draft = _draft(api, template_id, [list_id], exclude_list_ids=[other])
    assert READ_FIELDS <= set(draft) and COUNT_FIELDS <= set(draft["counts"])
    assert draft["status"] == "draft" and draft["counts"]["total"] == 0
    assert draft["template_version_id"] is None
    assert api("GET", f"/blasts/{draft['id']}/audience", role="viewer").json == {"count": 3}
    launched = api("POST", f"/blasts/{draft['id']}/launch")
    assert launched.status_code == 202
    assert launched.json["status"] == "preparing" and launched.json["template_version_id"]
    run_jobs(app)
    done = api("GET", f"/blasts/{draft['id']}", role="viewer").json
    assert done["status"] == "done"
    assert done["counts"]["sent"] == 3 and done["counts"]["total"] == 3
    assert count(app, OutboxEmail) == 3
    again = api("POST", f"/blasts/{draft['id']}/launch")
    assert again.status_code == 409 and again.json["error"]["code"] == "conflict"


def test_validation_names_the_fields(app, api):
    sms_id = sms_template(app)
    response = api("POST", "/blasts", {"name": "", "channel": "email", "template_id": sms_id,
                                       "list_ids": "all", "send_at": "tomorrow",
                                       "window": {"start": "12:00", "end": "10:00"},
                                       "throttle_per_minute": 0})
    assert response.status_code == 422
    details = response.json["error"]["details"]
    assert {"name", "template_id", "list_ids", "send_at", "window",
            "throttle_per_minute"} <= set(details)
    assert "sms template" in details["template_id"]
    missing = api("POST", "/blasts", {"name": "x", "template_id": 999999, "list_ids": [999]})
    assert missing.status_code == 422
    assert set(missing.json["error"]["details"]) >= {"template_id", "list_ids"}
    assert api("POST", "/blasts", ["not", "an", "object"]).status_code == 422


def test_pause_resume_cancel_and_their_conflicts(app, api):
    list_id = audience(app, 6)
    blast = _draft(api, email_template(app), [list_id])
    blast_id = blast["id"]
    for action in ("pause", "resume"):  # a draft can only be launched, changed or canceled
        assert api("POST", f"/blasts/{blast_id}/{action}").status_code == 409, action
    assert api("POST", f"/blasts/{blast_id}/launch").status_code == 202
    _run_prepare_only(app)
    prepared = api("GET", f"/blasts/{blast_id}").json
    assert prepared["status"] == "sending" and prepared["counts"]["queued"] == 6
    paused = api("POST", f"/blasts/{blast_id}/pause", {"reason": "Typo in the subject"})
    assert paused.status_code == 202
    assert paused.json["status"] == "paused"
    assert paused.json["status_reason"] == "Typo in the subject"
    assert api("POST", f"/blasts/{blast_id}/pause").status_code == 409
    assert api("PATCH", f"/blasts/{blast_id}", {"name": "x"}).status_code == 409
    run_jobs(app)  # the batches find the blast paused and send nothing
    assert count(app, OutboxEmail) == 0
    resumed = api("POST", f"/blasts/{blast_id}/resume")
    assert resumed.status_code == 202 and resumed.json["status"] == "sending"
    run_jobs(app)
    done = api("GET", f"/blasts/{blast_id}").json
    assert done["status"] == "done" and done["counts"]["sent"] == 6
    assert count(app, OutboxEmail) == 6
    for action in ("pause", "resume", "cancel", "launch"):
        assert api("POST", f"/blasts/{blast_id}/{action}").status_code == 409, action


def test_cancel_before_sending(app, api):
    list_id = audience(app, 3)
    blast_id = _draft(api, email_template(app), [list_id])["id"]
    api("POST", f"/blasts/{blast_id}/launch")
    _run_prepare_only(app)
    canceled = api("POST", f"/blasts/{blast_id}/cancel")
    assert canceled.status_code == 202 and canceled.json["status"] == "canceled"
    assert canceled.json["counts"]["canceled"] == 3
    run_jobs(app)
    assert count(app, OutboxEmail) == 0
    assert api("POST", f"/blasts/{blast_id}/cancel").status_code == 409
    assert api("POST", f"/blasts/{blast_id}/resume").status_code == 409


def test_scheduled_an_hour_ahead_sends_nothing(app, api):
    list_id = audience(app, 3)
    send_at = (utcnow() + timedelta(hours=1)).replace(microsecond=0)
    blast = _draft(api, email_template(app), [list_id], send_at=send_at.isoformat())
    launched = api("POST", f"/blasts/{blast['id']}/launch")
    assert launched.status_code == 202 and launched.json["status"] == "scheduled"
    run_jobs(app)
    state = api("GET", f"/blasts/{blast['id']}").json
    assert state["status"] == "scheduled" and state["counts"]["total"] == 0
    assert count(app, OutboxEmail) == 0 and count(app, Message) == 0
    later = (send_at + timedelta(hours=1)).isoformat()
    patched = api("PATCH", f"/blasts/{blast['id']}", {"send_at": later, "name": "Later"})
    assert patched.status_code == 200
    assert patched.json["status"] == "scheduled" and patched.json["name"] == "Later"
    assert patched.json["send_at"] == later


def test_patch_a_draft(app, api):
    list_id = audience(app, 2)
    blast = _draft(api, email_template(app), [list_id])
    patched = api("PATCH", f"/blasts/{blast['id']}",
                  {"window": {"start": "10:00", "end": "12:00"}, "throttle_per_minute": 100})
    assert patched.status_code == 200
    assert patched.json["window"] == {"start": "10:00", "end": "12:00"}
    assert patched.json["throttle_per_minute"] == 100 and patched.json["list_ids"] == [list_id]
    bad = api("PATCH", f"/blasts/{blast['id']}", {"list_ids": []})
    assert bad.status_code == 422 and "list_ids" in bad.json["error"]["details"]
    assert api("PATCH", "/blasts/999999", {"name": "x"}).status_code == 404


def test_list_with_cursor_and_status_filter(app, api):
    list_id = audience(app, 1)
    template_id = email_template(app)
    ids = [_draft(api, template_id, [list_id], name=f"B{n}")["id"] for n in range(3)]
    api("POST", f"/blasts/{ids[0]}/cancel")
    first = api("GET", "/blasts?limit=2", role="viewer").json
    assert [b["id"] for b in first["data"]] == [ids[2], ids[1]] and first["next_cursor"]
    assert READ_FIELDS <= set(first["data"][0])
    second = api("GET", f"/blasts?limit=2&cursor={first['next_cursor']}").json
    assert [b["id"] for b in second["data"]] == [ids[0]] and second["next_cursor"] is None
    canceled = api("GET", "/blasts?status=canceled").json["data"]
    assert [b["id"] for b in canceled] == [ids[0]]
    assert api("GET", "/blasts?status=nope").status_code == 422


def test_sms_blast_through_the_api(app, api):
    pytest.importorskip("outreach.channels.ratelimit")
    app.config.update(SMS_QUIET_START="00:00", SMS_QUIET_END="23:59", SMS_QUIET_END_FL_OK="23:59")
    list_id = audience(app, 4)
    blast = _draft(api, sms_template(app), [list_id], channel="sms")
    assert api("GET", f"/blasts/{blast['id']}/audience").json == {"count": 4}
    assert api("POST", f"/blasts/{blast['id']}/launch").status_code == 202
    run_jobs(app)
    state = api("GET", f"/blasts/{blast['id']}").json
    assert state["status"] == "done" and state["counts"]["sent"] == 4
    assert count(app, OutboxSms) == 4


def test_tokens_and_roles(app, api, client):
    list_id = audience(app, 1)
    blast_id = _draft(api, email_template(app), [list_id])["id"]
    assert client.get("/api/v1/blasts").status_code == 401
    assert client.post(f"/api/v1/blasts/{blast_id}/launch").status_code == 401
    assert api("GET", f"/blasts/{blast_id}", role="viewer").status_code == 200
    for method, path, body in [("POST", "/blasts", {"name": "x"}),
                               ("PATCH", f"/blasts/{blast_id}", {"name": "x"}),
                               ("POST", f"/blasts/{blast_id}/launch", None),
                               ("POST", f"/blasts/{blast_id}/pause", None),
                               ("POST", f"/blasts/{blast_id}/resume", None),
                               ("POST", f"/blasts/{blast_id}/cancel", None)]:
        response = api(method, path, body, role="viewer")
        assert response.status_code == 403 and response.json["error"]["code"] == "forbidden"
    assert api("GET", f"/blasts/{blast_id}").json["status"] == "draft"
    assert api("GET", "/blasts/999999").status_code == 404


def test_a_big_audience_is_remembered_until_its_definition_changes(app, api, monkeypatch):
    from outreach import slow_counts

    # Pretend every count is big and slow, as a million contacts would be.
    monkeypatch.setattr(slow_counts, "MIN_ROWS", 0)
    monkeypatch.setattr(slow_counts, "MIN_SECONDS", 0)
    # ...and remembered for the longest time, however fast this machine counts three rows.
    monkeypatch.setattr(slow_counts, "FACTOR", 1e9)
    list_id = audience(app, 3)
    other = audience(app, 2, list_name="Staff", start=10)
    draft = _draft(api, email_template(app), [list_id])
    path = f"/blasts/{draft['id']}/audience"
    assert api("GET", path, role="viewer").json == {"count": 3}
    assert audience(app, 2, start=20) == list_id  # two more in the same list
    assert api("GET", path, role="viewer").json == {"count": 3}  # remembered a moment
    assert api("PATCH", f"/blasts/{draft['id']}", {"list_ids": [list_id, other]}).status_code == 200
    assert api("GET", path, role="viewer").json == {"count": 7}  # a new audience: counted
