"""Attribution: the blast, message and link that brought a supporter; sources and referrals."""

from __future__ import annotations

import re

import sqlalchemy as sa

from outreach import db
from outreach.actions import service
from outreach.actions.models import Submission
from outreach.actions.submit import referral_code
from outreach.blasts.models import Message
from tests.actions.helpers import contact, emails_to, letter_page, make_page, post
from tests.fixtures.blasts import audience, email_template, launch_blast, send_all

TRACKED = re.compile(r'href="https?://[^/"]+/c/([\w-]+)/(\d+)"')


def blast_linking_to(app, slug: str, n: int = 3) -> tuple[int, dict[str, tuple[str, str]]]:
    """Send an email blast whose first link is /a/<slug>; return its id and each recipient's
    tracking token and link position, read from the outbox."""
    base = app.config["PUBLIC_BASE_URL"]
    html = (f'<html><body><p>Hi {{{{ first_name }}}}, <a href="{base}/a/{slug}">act now</a>'
            f' or <a href="https://example.org/more">read more</a>.</p></body></html>')
    list_id = audience(app, n=n)
    blast_id = launch_blast(app, email_template(app, html=html), [list_id], name="VP alert")
    assert send_all(app, blast_id)["status"] == "done"
    links = {}
    for i in range(n):
        [mail] = emails_to(app, f"p{i}@example.org")
        token, position = TRACKED.findall(mail.html)[0]
        links[f"p{i}@example.org"] = (token, position)
    return blast_id, links


def test_a_blast_link_attributes_the_action_to_its_blast_message_and_link(app, client, auth):
    page_id = letter_page(app)
    blast_id, links = blast_linking_to(app, "write-the-vp")
    token, position = links["p1@example.org"]
    page = client.get(f"/a/write-the-vp?t={token}&l={position}").get_data(as_text=True)
    assert f'name="t" value="{token}"' in page and f'name="l" value="{position}"' in page
    from tests.actions.test_letters import _targets

    response = post(client, "write-the-vp", query=f"t={token}&l={position}", first_name="P1",
                    email="p1@example.org", letter_subject="Hi", letter_body="Please act.",
                    target=_targets(app))
    assert response.status_code == 200
    person = contact(app, "p1@example.org")
    with app.app_context():
        session = db.session()
        submission = session.scalar(sa.select(Submission))
        message = session.scalar(sa.select(Message).where(Message.address == "p1@example.org"))
        assert submission is not None and message is not None
        assert submission.blast_id == blast_id and submission.message_id == message.id
        assert submission.link_position == int(position) == 0
        assert submission.contact_id == person.id and submission.source == f"blast:{blast_id}"
        assert service.actions_by_blast(session, blast_id) == 1
        assert service.actions_by_blast(session, blast_id + 1) == 0
    auth.login("viewer")
    figures = client.get(f"/actions/{page_id}/figures").get_data(as_text=True)
    assert "Blast: VP alert" in figures


def test_a_forged_token_or_unknown_link_is_ignored(app, client):
    make_page(app)
    blast_id, links = blast_linking_to(app, "join-us", n=1)
    token, _ = links["p0@example.org"]
    page = client.get("/a/join-us?t=forged&l=0").get_data(as_text=True)
    assert 'name="t"' not in page
    post(client, "join-us", query="source=newsletter", first_name="A", email="a@example.org",
         t="forged", l="0")
    post(client, "join-us", first_name="B", email="b@example.org", t=token, l="7")
    with app.app_context():
        rows = list(db.session().scalars(sa.select(Submission).order_by(Submission.id)))
        assert (rows[0].blast_id, rows[0].source) == (None, "newsletter")
        assert (rows[1].blast_id, rows[1].link_position) == (blast_id, None)


def test_referral_codes_credit_the_supporter_who_shared(app, client):
    make_page(app)
    post(client, "join-us", first_name="Sharer", email="sharer@example.org")
    sharer = contact(app, "sharer@example.org")
    with app.app_context():
        code = referral_code(sharer.id)
    page = client.get(f"/a/join-us?ref={code}").get_data(as_text=True)
    assert f'name="ref" value="{code}"' in page
    post(client, "join-us", query=f"ref={code}", first_name="Friend",
         email="friend@example.org")
    post(client, "join-us", query="ref=bogus", first_name="Other", email="other@example.org")
    with app.app_context():
        rows = list(db.session().scalars(sa.select(Submission).order_by(Submission.id)))
        assert (rows[1].referrer_contact_id, rows[1].source) == (sharer.id, "referral")
        assert (rows[2].referrer_contact_id, rows[2].ref, rows[2].source) == (
            None, "bogus", "direct")
