"""SMS keyword join: consent with the keyword as evidence, the list, the welcome reply."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from outreach import db
from outreach.actions import service
from outreach.actions.models import Submission
from outreach.contacts import consent
from outreach.contacts.models import Channel, ConsentEvent, Contact, ListMember
from outreach.contacts.service import create_list
from outreach.exceptions import ValidationError
from tests.actions.helpers import make_page, page_row
from tests.fixtures.contacts import make_contact

ORG = "+15005550006"


def _join(app, body: str, phone: str = "+12125550111") -> str | None:
    with app.app_context(), db.transaction() as session:
        return service.handle_keyword(session, phone, ORG, body)


def test_texting_the_keyword_joins_with_sms_consent_and_a_welcome(app):
    with app.app_context(), db.transaction() as session:
        list_id = create_list(session, "Texters").id
    page_id = make_page(app, keyword="vance", list_id=list_id,
                        welcome_sms="Welcome to the VP campaign!")
    assert page_row(app, page_id).keyword == "VANCE"
    reply = _join(app, "  Vance! ")
    assert reply == "Welcome to the VP campaign! Reply STOP to opt out, HELP for help."
    with app.app_context():
        session = db.session()
        person = session.scalar(sa.select(Contact).where(Contact.phone == "+12125550111"))
        assert person is not None and person.sms_consent == "granted"
        [event] = session.scalars(sa.select(ConsentEvent).where(
            ConsentEvent.contact_id == person.id))
        assert (event.channel, event.status, event.source) == ("sms", "granted", "keyword")
        assert event.evidence["keyword"] == "VANCE" and event.evidence["page"] == "join-us"
        assert event.evidence["to"] == ORG and event.evidence["time"]
        assert session.get(ListMember, (list_id, person.id)) is not None
        submission = session.scalar(sa.select(Submission))
        assert submission is not None and submission.source == "sms-keyword"
    assert page_row(app, page_id).signature_count == 1
    assert _join(app, "VANCE") is not None  # again: welcomed, counted once, one grant
    assert page_row(app, page_id).signature_count == 1
    with app.app_context():
        assert db.session().scalar(sa.select(sa.func.count()).select_from(ConsentEvent)) == 1


def test_other_texts_are_not_keywords(app):
    make_page(app, keyword="JOIN")
    assert _join(app, "join please") is None
    assert _join(app, "STOP") is None
    assert _join(app, "hello") is None
    with app.app_context():
        assert db.session().scalar(sa.select(sa.func.count()).select_from(Contact)) == 0


def test_unpublished_pages_do_not_answer_their_keyword(app):
    make_page(app, keyword="JOIN", published=False)
    assert _join(app, "join") is None


def test_a_number_that_sent_stop_is_not_resubscribed_by_a_keyword(app):
    make_page(app, keyword="JOIN")
    cid = make_contact(app, phone="+12125550111")
    with app.app_context(), db.transaction() as session:
        consent.revoke_and_suppress(session, session.get(Contact, cid), Channel.SMS, "stop",
                                    "keyword")
    reply = _join(app, "JOIN")
    assert reply is not None and "START" in reply
    with app.app_context():
        assert db.session().get(Contact, cid).sms_consent == "revoked"


def test_keywords_must_be_unique_and_not_reserved(app):
    make_page(app, keyword="JOIN")
    with app.app_context(), db.transaction() as session:
        for word in ("join", "STOP", "help", "two words"):
            with pytest.raises(ValidationError) as err:
                service.save_page(session, {"slug": f"p-{len(word)}", "title": "T",
                                            "keyword": word})
            assert "keyword" in err.value.fields
