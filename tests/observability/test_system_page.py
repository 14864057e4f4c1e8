"""The System page: who may see it, and what it shows about queues, workers and failures."""

from __future__ import annotations

from rq import Worker

from outreach.queue import connection, enqueue, get_queue
from tests.fixtures.app import csrf_token, run_jobs
from tests.observability.jobs import fail_for_blast


def test_roles(app, client, auth):
    anonymous = client.get("/system")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    auth.login("viewer")
    assert client.get("/system").status_code == 403
    assert 'href="/system"' not in client.get("/").get_data(as_text=True)
    auth.logout()
    for role in ("organizer", "admin"):
        auth.login(role)
        assert client.get("/system").status_code == 200
        assert 'href="/system"' in client.get("/").get_data(as_text=True)
        auth.logout()


def test_queues_workers_and_failed_jobs(app, client, auth):
    with app.app_context():
        enqueue("default", fail_for_blast, 41, "the template vanished")
        run_jobs(app)
        enqueue("email", fail_for_blast, 42, "waiting")
        enqueue("email", fail_for_blast, 43, "waiting")
    client_redis = connection(app)
    worker = Worker([get_queue("sms", client_redis), get_queue("email", client_redis)],
                    connection=client_redis, name="sms-worker-1")
    worker.register_birth()
    try:
        auth.login("organizer")
        html = client.get("/system").get_data(as_text=True)
    finally:
        worker.register_death()
    assert '<meta http-equiv="refresh" content="10">' in html
    assert "<script>" not in html  # the CSP forbids inline script; the page needs none
    email_row = html.split('id="queue-email"')[1].split("</tr>")[0]
    assert '<td data-label="Waiting">2</td>' in email_row
    default_row = html.split('id="queue-default"')[1].split("</tr>")[0]
    assert 'badge-failed">1<' in default_row
    assert "sms-worker-1" in html and "sms, email" in html
    assert "ValueError: the template vanished" in html
    assert "fail_for_blast(41" in html


def test_page_without_workers_says_so(app, client, auth):
    auth.login("admin")
    html = client.get("/system").get_data(as_text=True)
    assert "No worker is running" in html and "No failed jobs." in html


def test_admins_can_run_a_failed_job_again(app, client, auth):
    with app.app_context():
        job = enqueue("default", fail_for_blast, 44, "flaky provider")
        run_jobs(app)
    auth.login("organizer")
    html = client.get("/system").get_data(as_text=True)
    assert "Run again" not in html
    token = csrf_token(client, "/system")
    refused = client.post(f"/system/failed/{job.id}/requeue", data={"csrf_token": token})
    assert refused.status_code == 403
    auth.logout()
    auth.login("admin")
    token = csrf_token(client, "/system")
    assert "Run again" in client.get("/system").get_data(as_text=True)
    response = client.post(f"/system/failed/{job.id}/requeue", data={"csrf_token": token},
                           follow_redirects=True)
    assert f"Job {job.id} is back on the default queue." in response.get_data(as_text=True)
    assert get_queue("default", connection(app)).count == 1
    again = client.post(f"/system/failed/{job.id}/requeue", data={"csrf_token": token},
                        follow_redirects=True)
    assert "no longer in the failed list" in again.get_data(as_text=True)
