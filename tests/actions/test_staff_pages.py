"""Staff pages: organizers create and edit each kind; viewers read; the embed snippet; figures."""

from __future__ import annotations

import html

import pytest
import sqlalchemy as sa

from outreach import db
from outreach.actions.models import ActionPage, LetterTarget
from tests.actions.helpers import make_page, post
from tests.fixtures.app import csrf_token

BASE_FORM = {"title": "Write the VP", "language": "en", "intro": "Tell him.",
             "mode_first_name": "required", "label_first_name": "First name",
             "mode_last_name": "optional", "label_last_name": "", "mode_email": "required",
             "label_email": "Email", "mode_phone": "optional", "label_phone": "",
             "mode_postal_code": "hidden", "label_postal_code": "",
             "email_consent_text": "Email me", "sms_consent_text": "", "published": "1",
             "share_step": "1", "thank_you_text": "Thanks!"}


def _create(client, **fields):
    token = csrf_token(client, "/actions/new")
    return client.post("/actions/new", data={**BASE_FORM, "csrf_token": token, **fields})


def _page(app, slug: str) -> ActionPage:
    with app.app_context():
        row = db.session().scalar(sa.select(ActionPage).where(ActionPage.slug == slug))
        assert row is not None
        db.session().expunge(row)
        return row


@pytest.mark.parametrize("kind,extra", [
    ("signup", {"keyword": "join", "welcome_sms": "Welcome!"}),
    ("petition", {"petition_goal": "5000"}),
    ("letter", {"targets": "Vice President <vp@gov.example.org>\nStaff, staff@gov.example.org",
                "letter_subject": "Rivers", "letter_body": "Dear VP,",
                "delivery_mode": "daily_digest", "max_letters_per_target": "2"}),
])
def test_organizer_creates_each_kind(app, client, auth, kind, extra):
    auth.login("organizer")
    form = client.get(f"/actions/new?kind={kind}").get_data(as_text=True)
    assert f'name="kind" value="{kind}"' in form
    response = _create(client, slug=f"my-{kind}", kind=kind,
                       questions="why | Why do you care? | required", **extra)
    assert response.status_code == 302, response.get_data(as_text=True)
    page = _page(app, f"my-{kind}")
    assert page.kind == kind and page.published and page.email_consent_text == "Email me"
    assert page.fields["questions"] == [{"key": "why", "label": "Why do you care?",
                                         "required": True}]
    assert page.fields["postal_code"]["mode"] == "hidden"
    if kind == "signup":
        assert page.keyword == "JOIN"
    if kind == "petition":
        assert page.petition_goal == 5000
    if kind == "letter":
        assert (page.delivery_mode, page.max_letters_per_target) == ("daily_digest", 2)
        with app.app_context():
            targets = db.session().execute(sa.select(LetterTarget.name, LetterTarget.email)
                                           .order_by(LetterTarget.position)).all()
        assert [tuple(t) for t in targets] == [("Vice President", "vp@gov.example.org"),
                                               ("Staff", "staff@gov.example.org")]
    public = client.get(f"/a/my-{kind}").get_data(as_text=True)
    assert "Why do you care?" in public


def test_editor_refuses_bad_settings_with_field_errors(app, client, auth):
    make_page(app, slug="taken")
    auth.login("organizer")
    response = _create(client, slug="taken", kind="letter", keyword="STOP",
                       mode_email="hidden", mode_phone="hidden", language="not a tag!")
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    for message in ("another page uses this address", "not STOP, START, HELP",
                    "show the email or the phone field", "a letter page needs at least one target",
                    "a language tag"):
        assert message in body
    assert 'value="Write the VP"' in body  # the organizer's input is kept


def test_organizer_edits_a_page_and_targets_are_kept_for_old_letters(app, client, auth):
    page_id = make_page(app, slug="letter", kind="letter", title="Letter", letter_subject="S",
                        targets=[{"name": "A", "email": "a@gov.example.org"}])
    auth.login("organizer")
    form = client.get(f"/actions/{page_id}/edit").get_data(as_text=True)
    assert "A &lt;a@gov.example.org&gt;" in form
    token = csrf_token(client, f"/actions/{page_id}/edit")
    response = client.post(f"/actions/{page_id}/edit", data={
        **BASE_FORM, "csrf_token": token, "slug": "letter", "kind": "letter",
        "title": "New title", "letter_subject": "S", "targets": "B <b@gov.example.org>"})
    assert response.status_code == 302
    assert _page(app, "letter").title == "New title"
    with app.app_context():
        rows = db.session().execute(sa.select(LetterTarget.email, LetterTarget.active)
                                    .order_by(LetterTarget.id)).all()
    assert [tuple(r) for r in rows] == [("a@gov.example.org", False), ("b@gov.example.org", True)]


def test_viewers_read_but_cannot_write(app, client, auth):
    page_id = make_page(app)
    auth.login("viewer")
    assert client.get("/actions").status_code == 200
    assert client.get(f"/actions/{page_id}").status_code == 200
    assert client.get(f"/actions/{page_id}/figures").status_code == 200
    assert client.get("/actions/moderation").status_code == 200
    assert client.get("/actions/new").status_code == 403
    assert client.get(f"/actions/{page_id}/edit").status_code == 403
    token = csrf_token(client, "/actions")
    assert client.post("/actions/new", data={**BASE_FORM, "csrf_token": token,
                                             "slug": "x"}).status_code == 403
    assert client.post(f"/actions/{page_id}/edit", data={**BASE_FORM, "csrf_token": token,
                                                         "slug": "x"}).status_code == 403
    listing = client.get("/actions").get_data(as_text=True)
    assert "New sign-up page" not in listing and "Join us" in listing


def test_anonymous_visitors_are_sent_to_login(app, client):
    page_id = make_page(app)
    for path in ("/actions", f"/actions/{page_id}", f"/actions/{page_id}/figures"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_page_detail_shows_the_embed_snippet(app, client, auth):
    page_id = make_page(app, title='Join "us"')
    auth.login("viewer")
    body = html.unescape(client.get(f"/actions/{page_id}").get_data(as_text=True))
    base = app.config["PUBLIC_BASE_URL"]
    assert f'<iframe src="{base}/a/join-us?embed=1" title="Join &quot;us&quot;"' in body


def test_figures_page_reads_views_submissions_and_sources(app, client, auth):
    page_id = make_page(app)
    client.get("/a/join-us?source=facebook")
    client.get("/a/join-us?source=facebook")
    post(client, "join-us", query="source=facebook", first_name="A", email="a@example.org")
    post(client, "join-us", first_name="B", email="b@example.org")
    auth.login("viewer")
    body = client.get(f"/actions/{page_id}/figures").get_data(as_text=True)
    assert "<strong>4</strong> views" in body
    assert "<strong>2</strong> submissions" in body and "<strong>50.0%</strong>" in body
    assert "<strong>2</strong> new contacts" in body
    assert '<td data-label="Source">facebook</td>' in body
    assert "33.3%" in body  # facebook: 1 of 3 views


def test_unpublished_pages_are_hidden_from_the_public_but_previewable(app, client, auth):
    make_page(app, published=False)
    assert client.get("/a/join-us").status_code == 404
    auth.login("viewer")
    preview = client.get("/a/join-us")
    assert preview.status_code == 200 and "not published yet" in preview.get_data(as_text=True)
