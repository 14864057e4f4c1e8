"""Letter pages: delivery one by one and as a daily digest, caps, word list and moderation."""

from __future__ import annotations

import sqlalchemy as sa

from outreach import db
from outreach.actions import jobs
from outreach.actions.models import Letter
from tests.actions.helpers import (
    contact,
    emails_to,
    letter_page,
    page_row,
    post,
)
from tests.fixtures.app import run_jobs


def _letters(app) -> list[Letter]:
    with app.app_context():
        session = db.session()
        rows = list(session.scalars(sa.select(Letter).order_by(Letter.id)))
        for row in rows:
            session.expunge(row)
        return rows


def _targets(app) -> list[str]:
    from outreach.actions.models import LetterTarget

    with app.app_context():
        return [str(i) for i in db.session().scalars(
            sa.select(LetterTarget.id).order_by(LetterTarget.position))]


def _write(client, n: int = 0, **fields):
    data = {"first_name": f"Writer{n}", "email": f"w{n}@example.org", "postal_code": "10001",
            "letter_subject": "Protect our rivers now",
            "letter_body": "Dear Vice President,\nPlease act <b>today</b>.", **fields}
    return post(client, "write-the-vp", **data)


def test_letters_are_delivered_one_by_one_to_each_target(app, client):
    page_id = letter_page(app)
    form = client.get("/a/write-the-vp").get_data(as_text=True)
    assert "Protect our rivers" in form and "Dear Vice President," in form  # suggestions
    assert "<strong data-letters>0</strong> letters sent" in form
    response = _write(client, target=_targets(app))
    assert response.status_code == 200 and "Thank you!" in response.get_data(as_text=True)
    assert [x.status for x in _letters(app)] == ["approved", "approved"]
    run_jobs(app)
    [to_vp] = emails_to(app, "vp@gov.example.org")
    [to_cos] = emails_to(app, "cos@gov.example.org")
    assert to_vp.subject == "Protect our rivers now" and to_vp.to_email.startswith(
        "Vice President")
    assert "Please act <b>today</b>." in to_vp.text
    assert "Please act &lt;b&gt;today&lt;/b&gt;." in to_vp.html  # never rendered as HTML
    assert "Writer0, 10001" in to_vp.text
    assert to_vp.reply_to == "w0@example.org" and "Writer0" in to_vp.from_email
    assert to_cos.subject == "Protect our rivers now"
    assert [x.status for x in _letters(app)] == ["sent", "sent"]
    assert page_row(app, page_id).letters_sent == 2
    assert "<strong data-letters>2</strong> letters sent" in client.get(
        "/a/write-the-vp").get_data(as_text=True)
    run_jobs(app)
    assert len(emails_to(app, "vp@gov.example.org")) == 1  # delivered once


def test_a_supporter_may_write_to_one_target_only(app, client):
    letter_page(app)
    none_chosen = _write(client, follow=False)
    assert none_chosen.status_code == 422
    assert "Please choose at least one recipient." in none_chosen.get_data(as_text=True)
    _write(client, target=_targets(app)[1])
    run_jobs(app)
    assert emails_to(app, "vp@gov.example.org") == []
    assert len(emails_to(app, "cos@gov.example.org")) == 1


def test_letters_are_capped_per_supporter_per_target(app, client):
    letter_page(app, max_letters_per_target=2)
    for _ in range(3):
        assert _write(client, target=_targets(app)[0]).status_code == 200
    assert len(_letters(app)) == 2
    _write(client, n=1, target=_targets(app)[0])
    assert len(_letters(app)) == 3  # another supporter has their own allowance


def test_daily_digest_sends_each_target_one_email(app, client):
    page_id = letter_page(app, delivery_mode="daily_digest")
    for n in range(3):
        _write(client, n=n, target=_targets(app))
    run_jobs(app)  # the digest is scheduled for midnight, not sent now
    assert emails_to(app, "vp@gov.example.org") == []
    with app.app_context():
        assert jobs.send_digests(page_id) == 2
        assert jobs.send_digests(page_id) == 0  # nothing left: nothing sent twice
    [digest] = emails_to(app, "vp@gov.example.org")
    assert digest.subject == "3 letters from supporters: Write the Vice President"
    for n in range(3):
        assert f"Writer{n}, 10001" in digest.text
    assert len(emails_to(app, "cos@gov.example.org")) == 1
    assert page_row(app, page_id).letters_sent == 6
    assert {x.status for x in _letters(app)} == {"sent"}


def test_flagged_letters_wait_for_moderation(app, client, auth):
    app.config["ACTION_BLOCKED_WORDS"] = "idiot, total fraud"
    letter_page(app)
    _write(client, n=0, target=_targets(app)[0], letter_body="You IDIOT, this is a total fraud.")
    _write(client, n=1, target=_targets(app)[0], letter_body="Idiotic? No: a fine letter.")
    _write(client, n=2, target=_targets(app)[0], letter_body="You idiot.")
    letters = _letters(app)
    assert [x.status for x in letters] == ["flagged", "approved", "flagged"]
    assert letters[0].flagged_words == ["idiot", "total fraud"]
    run_jobs(app)
    assert len(emails_to(app, "vp@gov.example.org")) == 1
    auth.login("viewer")
    queue = client.get("/actions/moderation").get_data(as_text=True)
    assert "You IDIOT, this is a total fraud." in queue and "Approve and deliver" not in queue
    assert client.post(f"/actions/letters/{letters[0].id}/approve").status_code in (400, 403)
    auth.logout()
    auth.login("organizer")
    page = client.get("/actions/moderation").get_data(as_text=True)
    assert "Approve and deliver" in page
    from tests.fixtures.app import csrf_token

    token = csrf_token(client, "/actions/moderation")
    done = client.post(f"/actions/letters/{letters[0].id}/approve",
                       data={"csrf_token": token}, follow_redirects=True)
    assert "approved for delivery" in done.get_data(as_text=True)
    client.post(f"/actions/letters/{letters[2].id}/reject", data={"csrf_token": token})
    run_jobs(app)
    statuses = [x.status for x in _letters(app)]
    assert statuses == ["sent", "sent", "rejected"]
    bodies = [e.text for e in emails_to(app, "vp@gov.example.org")]
    assert any("total fraud" in b for b in bodies) and not any(b.startswith("You idiot.")
                                                               for b in bodies)
    again = client.post(f"/actions/letters/{letters[2].id}/approve",
                        data={"csrf_token": token}, follow_redirects=True)
    assert "not waiting for moderation" in again.get_data(as_text=True)
    assert contact(app, "w2@example.org") is not None


def test_viewer_cannot_moderate(app, client, auth):
    app.config["ACTION_BLOCKED_WORDS"] = "idiot"
    letter_page(app)
    _write(client, target=_targets(app)[0], letter_body="idiot")
    [letter] = _letters(app)
    auth.login("viewer")
    from tests.fixtures.app import csrf_token

    token = csrf_token(client, "/actions/moderation")
    response = client.post(f"/actions/letters/{letter.id}/approve", data={"csrf_token": token})
    assert response.status_code == 403
    assert _letters(app)[0].status == "flagged"


def test_a_suppressed_target_address_is_never_mailed(app, client):
    from outreach.contacts import consent
    from outreach.contacts.models import Channel

    page_id = letter_page(app)
    with app.app_context(), db.transaction() as session:
        consent.suppress(session, Channel.EMAIL, "cos@gov.example.org", "hard_bounce")
    _write(client, target=_targets(app))
    run_jobs(app)
    assert emails_to(app, "cos@gov.example.org") == []
    assert len(emails_to(app, "vp@gov.example.org")) == 1
    failed = [x for x in _letters(app) if x.status == "failed"]
    assert len(failed) == 1 and "suppressed (hard_bounce)" in (failed[0].error or "")
    assert page_row(app, page_id).letters_sent == 1
