"""In Chromium on a phone: from a blast email's link to a delivered letter."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from outreach import db
from outreach.actions.models import Letter, Submission
from outreach.blasts.models import Message
from outreach.contacts.models import ConsentEvent, Contact
from tests.actions.helpers import EMAIL_CONSENT, emails_to, letter_page, make_page
from tests.actions.test_attribution import TRACKED
from tests.fixtures.app import run_jobs
from tests.fixtures.blasts import audience, email_template, launch_blast, send_all
from tests.fixtures.services import require

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


@pytest.fixture
def live(app) -> Iterator[str]:
    """The app served over HTTP on a free local port, with links pointing at it."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    app.config["PUBLIC_BASE_URL"] = url
    yield url
    server.shutdown()
    thread.join(5)


@pytest.fixture
def sync_api():
    """Playwright's sync API, or a skip (a failure under CI) when it or Chromium is missing."""
    if not os.path.exists(CHROMIUM):
        require(f"Debian's Chromium is not installed at {CHROMIUM}")
    try:
        from playwright import sync_api
    except ImportError:
        require("the playwright package is not installed")
    return sync_api


@pytest.fixture
def phone(sync_api) -> Iterator[tuple[object, list[str]]]:
    """A phone-sized Chromium tab, and the console errors and script failures it reports."""
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 390, "height": 844},
                                      is_mobile=True, has_touch=True)
        tab = context.new_page()
        problems: list[str] = []
        tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda exc: problems.append(str(exc)))
        yield tab, problems
        browser.close()


def test_a_supporter_writes_a_letter_from_a_blast_email_on_a_phone(app, live, sync_api, phone):
    letter_page(app, email_consent_text=EMAIL_CONSENT,
                targets=[{"name": "Vice President", "email": "vp@gov.example.org"}])
    html = (f'<html><body><p>Hi {{{{ first_name }}}}, <a href="{live}/a/write-the-vp">write '
            f"the Vice President</a> before his visit.</p></body></html>")
    blast_id = launch_blast(app, email_template(app, html=html), [audience(app, n=3)])
    assert send_all(app, blast_id)["status"] == "done"
    [mail] = emails_to(app, "p1@example.org")
    token, position = TRACKED.findall(mail.html)[0]
    tab, problems = phone
    tab.goto(f"{live}/c/{token}/{position}")  # the tracked link as the email has it
    assert tab.url.startswith(f"{live}/a/write-the-vp")
    if "t=" not in tab.url:  # until the click redirect passes the token on
        tab.goto(f"{live}/a/write-the-vp?t={token}&l={position}")
    assert tab.evaluate("document.documentElement.scrollWidth") <= 390
    tab.get_by_role("textbox", name="Subject", exact=True).fill("Protect our rivers, please")
    tab.get_by_role("textbox", name="Message", exact=True).fill(
        "Dear Vice President,\nOur rivers need you.")
    tab.get_by_role("textbox", name="First name", exact=True).fill("Pat")
    tab.get_by_role("textbox", name="Email", exact=True).fill("p1@example.org")
    tab.get_by_role("checkbox", name=EMAIL_CONSENT).check()
    tab.get_by_role("button", name="Send my letter").click()
    sync_api.expect(tab.get_by_role("heading", name="Thank you!")).to_be_visible()
    assert "ref=" in tab.locator("#share-url").input_value()
    assert tab.evaluate("document.documentElement.scrollWidth") <= 390
    assert problems == []
    with app.app_context():
        session = db.session()
        person = session.scalar(sa.select(Contact).where(Contact.email == "p1@example.org"))
        assert person is not None and person.email_consent == "granted"
        event = session.scalar(sa.select(ConsentEvent).where(
            ConsentEvent.contact_id == person.id, ConsentEvent.source == "form"))
        assert event is not None and event.evidence["text"] == EMAIL_CONSENT
        assert event.evidence["page"] == "write-the-vp" and event.evidence["ip"] == "127.0.0.1"
        message = session.scalar(sa.select(Message).where(Message.address == "p1@example.org"))
        submission = session.scalar(sa.select(Submission))
        assert submission is not None and message is not None
        assert (submission.blast_id, submission.message_id) == (blast_id, message.id)
        assert submission.contact_id == person.id
    run_jobs(app)
    [letter_mail] = emails_to(app, "vp@gov.example.org")
    assert letter_mail.subject == "Protect our rivers, please"
    assert "Our rivers need you." in letter_mail.text and letter_mail.reply_to == "p1@example.org"
    with app.app_context():
        assert db.session().scalar(sa.select(Letter.status)) == "sent"


def test_the_embedded_form_works_inside_another_sites_page(app, live, sync_api, phone):
    make_page(app)
    tab, problems = phone
    page = (f'<!doctype html><title>Campaign</title><h1>Our campaign</h1><iframe '
            f'src="{live}/a/join-us?embed=1" title="Join us" width="380" height="700"></iframe>')

    def website(environ, start_response):  # another site (localhost, another port)
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [page.encode()]

    server = make_server("localhost", 0, website)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        tab.goto(f"http://localhost:{server.server_port}/")
        frame = tab.frame_locator("iframe")
        frame.get_by_role("textbox", name="First name", exact=True).fill("Embed")
        frame.get_by_role("textbox", name="Email", exact=True).fill("embed@example.org")
        frame.get_by_role("button", name="Sign up").click()
        sync_api.expect(frame.get_by_role("heading", name="Thank you!")).to_be_visible()
    finally:
        server.shutdown()
        thread.join(5)
    assert problems == []
    with app.app_context():
        row = db.session().scalar(sa.select(Submission))
        assert row is not None and row.source == "embed"
