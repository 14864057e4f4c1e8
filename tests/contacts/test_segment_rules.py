"""Segments compile to one SQL condition, with the same results on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from outreach import db
from outreach.contacts import consent, segments, service
from outreach.contacts.models import Channel, ConsentStatus, Contact
from outreach.exceptions import ValidationError
from tests.fixtures.contacts import make_contact

NOW = datetime.now(UTC)


@pytest.fixture
def people(app):
    """Nine contacts with different lists, tags, fields, consent and engagement."""
    with app.app_context(), db.transaction() as session:
        rally = service.create_list(session, "Rally").id
        donors = service.create_list(session, "Donors").id
    specs = [
        dict(email="a@example.org", first_name="Ann", tags=["volunteer"], lists=[rally],
             fields={"city": "Denver", "age": "34"}),
        dict(email="b@example.org", first_name="Bob", tags=["donor"], lists=[donors],
             fields={"city": "denver", "age": "61"}),
        dict(email="c@example.org", first_name="Cy", tags=["volunteer", "donor"],
             lists=[rally, donors], fields={"city": "Austin"}),
        dict(phone="+12125550101", first_name="Di", postal_code="10001"),
        dict(email="e@example.org", first_name="Ed 100%_off"),
        dict(email="f@example.org", lists=[rally]),
        dict(phone="+14155550199", tags=["volunteer"]),
        dict(email="h@example.org", fields={"age": "5"}),
        dict(email="i@example.org", fields={"age": "unknown"}),
    ]
    ids = [make_contact(app, **spec) for spec in specs]
    with app.app_context(), db.transaction() as session:
        contacts = {c.id: c for c in session.scalars(sa.select(Contact))}
        for i in (0, 1, 4):
            consent.record_consent(session, contacts[ids[i]], Channel.EMAIL,
                                   ConsentStatus.GRANTED, "form")
        consent.record_consent(session, contacts[ids[1]], Channel.EMAIL, ConsentStatus.REVOKED,
                               "unsubscribe")
        contacts[ids[0]].last_clicked_at = NOW - timedelta(days=3)
        contacts[ids[2]].last_clicked_at = NOW - timedelta(days=45)
        contacts[ids[3]].last_opened_at = NOW - timedelta(days=1)
        contacts[ids[7]].created_at = NOW - timedelta(days=400)
    return {"ids": ids, "rally": rally, "donors": donors}


def _names(app, rules):
    with app.app_context():
        condition = segments.compile_rules(segments.validate_rules(rules), NOW)
        rows = db.session().scalars(sa.select(Contact.id).where(condition).order_by(Contact.id))
        found = list(rows)
        assert segments.count_matching(db.session(), rules) == len(found)
    return found


def rule(field, op, value=None):
    return {"field": field, "op": op, "value": value}


def test_rules_match_the_expected_contacts(app, people):
    ids, rally = people["ids"], people["rally"]
    pick = lambda *idx: [ids[i] for i in idx]  # noqa: E731
    cases = [
        ({"match": "all", "rules": [rule("list", "in", rally)]}, pick(0, 2, 5)),
        ({"match": "all", "rules": [rule("list", "not_in", rally)]}, pick(1, 3, 4, 6, 7, 8)),
        ({"match": "all", "rules": [rule("tag", "has", "volunteer"),
                                    rule("tag", "not_has", "donor")]}, pick(0, 6)),
        ({"match": "any", "rules": [rule("tag", "has", "donor"),
                                    rule("list", "in", rally)]}, pick(0, 1, 2, 5)),
        ({"match": "all", "rules": [rule("custom:city", "eq", "DENVER")]}, pick(0, 1)),
        ({"match": "all", "rules": [rule("custom:age", "gt", "30")]}, pick(0, 1)),
        ({"match": "all", "rules": [rule("custom:age", "lt", 30)]}, pick(7)),
        ({"match": "all", "rules": [rule("custom:city", "empty")]}, pick(3, 4, 5, 6, 7, 8)),
        ({"match": "all", "rules": [rule("consent_email", "eq", "granted")]}, pick(0, 4)),
        ({"match": "all", "rules": [rule("consent_email", "eq", "revoked")]}, pick(1)),
        ({"match": "all", "rules": [rule("clicked", "within_days", 30)]}, pick(0)),
        ({"match": "all", "rules": [rule("clicked", "not_within_days", 30),
                                    rule("email", "not_empty")]}, pick(1, 2, 4, 5, 7, 8)),
        ({"match": "all", "rules": [rule("opened", "ever")]}, pick(3)),
        ({"match": "all", "rules": [rule("created_at", "within_days", 30)]}, pick(*range(7), 8)),
        ({"match": "all", "rules": [rule("created_at", "before",
                                         (NOW - timedelta(days=100)).date().isoformat())]},
         pick(7)),
        ({"match": "all", "rules": [rule("first_name", "contains", "100%_")]}, pick(4)),
        ({"match": "all", "rules": [rule("region", "eq", "ny")]}, pick(3)),
        ({"match": "all", "rules": [rule("tag", "has", "volunteer"),
                                    {"match": "any", "rules": [
                                        rule("phone", "not_empty"),
                                        rule("clicked", "within_days", 7)]}]}, pick(0, 6)),
        ({"match": "all", "rules": []}, pick(*range(9))),
    ]
    for rules, expected in cases:
        assert _names(app, rules) == expected, rules


@pytest.mark.parametrize("rules,complaint", [
    ({"rules": []}, "match"),
    ({"match": "all", "rules": [rule("shoe_size", "eq", "9")]}, "unknown field"),
    ({"match": "all", "rules": [rule("tag", "eq", "x")]}, "tag takes"),
    ({"match": "all", "rules": [rule("list", "in", "Rally")]}, "list id"),
    ({"match": "all", "rules": [rule("clicked", "within_days", -1)]}, "number of days"),
    ({"match": "all", "rules": [rule("created_at", "before", "last tuesday")]}, "YYYY-MM-DD"),
    ({"match": "all", "rules": [rule("consent_sms", "eq", "maybe")]}, "granted, revoked"),
])
def test_invalid_rules_are_refused_with_a_reason(app, rules, complaint):
    with pytest.raises(ValidationError) as err:
        segments.validate_rules(rules)
    assert complaint in err.value.fields["rules"]


def test_saved_segment_filters_contact_search(app, people):
    with app.app_context():
        with db.transaction() as session:
            seg = segments.save_segment(session, "Volunteers",
                                        {"match": "all", "rules": [rule("tag", "has",
                                                                        "volunteer")]})
        query = service.search_contacts(db.session(), segment_id=seg.id)
        found = [c.id for c in db.session().scalars(query)]
    assert found == [people["ids"][i] for i in (0, 2, 6)]
