"""Big imports go through in batches, applied while the file is read: same result as one batch."""

from __future__ import annotations

import csv
import io

import pytest
import sqlalchemy as sa

from outreach import db
from outreach.contacts import import_stage
from outreach.contacts.import_keys import may_skip_triggers
from outreach.contacts.imports import rejections_csv
from outreach.contacts.models import ConsentEvent, ContactTag, ListMember
from outreach.key_checks import KeyGone, lock_keys
from tests.contacts.test_import import MESSY
from tests.fixtures.contacts import contacts_by_email, import_csv, make_contact


def _count(app, model) -> int:
    with app.app_context():
        return int(db.session().scalar(sa.select(sa.func.count()).select_from(model)))


def _reasons(app, import_id) -> dict[int, str]:
    with app.app_context():
        text = "".join(rejections_csv(db.session(), import_id))
    return {int(row[0]): row[1] for row in list(csv.reader(io.StringIO(text)))[1:]}


@pytest.mark.parametrize("batch", [1, 2, 3])
def test_the_messy_file_in_tiny_batches_gives_the_same_result(app, monkeypatch, batch):
    monkeypatch.setattr(import_stage, "BATCH", batch)
    imp = import_csv(app, MESSY, consent="email", source="Rally sign-up sheet")
    assert (imp.status, imp.rows_total, imp.created, imp.rejected) == ("done", 8, 3, 5)
    # A duplicate is found whatever batch its first occurrence was in.
    reasons = _reasons(app, imp.id)
    assert reasons[7] == "duplicate in file (same email as line 2)"
    assert reasons[11] == "duplicate in file (same phone as line 10)"
    assert (_count(app, ListMember), _count(app, ContactTag), _count(app, ConsentEvent)) == \
        (3, 3, 2)
    ids = [c.id for c in contacts_by_email(app).values()]
    assert ids == sorted(ids)  # contacts are created in file order


def test_matches_and_new_contacts_mixed_across_batches(app, monkeypatch):
    monkeypatch.setattr(import_stage, "BATCH", 2)
    make_contact(app, email="b@example.org", first_name="Bea")
    make_contact(app, phone="+12125550104", first_name="Dee")
    rows = "".join(f"{c}@example.org,212-555-01{i:02d},{c.upper()}\n"
                   for i, c in enumerate("abcdef", start=1))
    imp = import_csv(app, "email,phone,first name\n" + rows, mode="update",
                     consent="email,sms", source="sheet")
    assert (imp.status, imp.created, imp.updated, imp.rejected) == ("done", 4, 2, 0)
    people = contacts_by_email(app)
    assert people["b@example.org"].first_name == "B"
    assert people["d@example.org"].phone == "+12125550104"  # matched by phone, email filled
    assert _count(app, ListMember) == 6
    # Consent: granted to the four new contacts and to the two matched ones that had none.
    assert _count(app, ConsentEvent) == 12


def test_an_email_rejected_row_does_not_hide_a_later_phone(app, monkeypatch):
    """The dedupe order of the SQL version: by email first, then by phone among the rest."""
    monkeypatch.setattr(import_stage, "BATCH", 1)
    imp = import_csv(app, "email,phone\n"
                          "a@example.org,2125550101\n"
                          "a@example.org,2125550102\n"  # email duplicate: its phone is free
                          "b@example.org,2125550102\n"
                          "c@example.org,2125550101\n")  # phone duplicate; its email counts
    assert (imp.created, imp.rejected) == (2, 2)
    reasons = _reasons(app, imp.id)
    assert reasons == {3: "duplicate in file (same email as line 2)",
                       5: "duplicate in file (same phone as line 2)"}
    assert set(contacts_by_email(app)) == {"a@example.org", "b@example.org"}


def test_a_failure_in_a_later_batch_leaves_nothing_written(app, monkeypatch):
    monkeypatch.setattr(import_stage, "BATCH", 2)
    engine = app.extensions["db_engine"]
    with engine.begin() as conn:  # fails on the fourth contact, in the second batch
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text(
                "CREATE OR REPLACE FUNCTION outreach_test_boom() RETURNS trigger AS $$ BEGIN "
                "IF NEW.email = 'd@example.org' THEN RAISE EXCEPTION 'boom'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"))
            conn.execute(sa.text("CREATE TRIGGER boom BEFORE INSERT ON contacts "
                                 "FOR EACH ROW EXECUTE FUNCTION outreach_test_boom()"))
        else:
            conn.execute(sa.text("CREATE TRIGGER boom BEFORE INSERT ON contacts "
                                 "WHEN NEW.email = 'd@example.org' "
                                 "BEGIN SELECT RAISE(ABORT, 'boom'); END"))
    rows = "".join(f"{c}@example.org\n" for c in "abcdef")
    try:
        failed = import_csv(app, "email\n" + rows, consent="email", source="x")
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TRIGGER boom" + (" ON contacts"
                                 if conn.dialect.name == "postgresql" else "")))
    assert failed.status == "failed"
    for model in (ListMember, ConsentEvent, ContactTag):
        assert _count(app, model) == 0
    assert contacts_by_email(app) == {}


def test_foreign_keys_are_checked_per_statement_on_postgresql(app):
    """As the superuser the tests run as, the import locks what it refers to, set-based."""
    with app.app_context():
        session = db.session()
        if session.get_bind().dialect.name != "postgresql":
            pytest.skip("per-row foreign key triggers are a PostgreSQL matter")
        assert may_skip_triggers(session)
        lock_keys(session, "lists", "SELECT 0 WHERE false")  # nothing wanted, nothing missing
        with pytest.raises(KeyGone, match="1 row"):
            lock_keys(session, "lists", "SELECT :id", id=12345)
        session.rollback()
    imp = import_csv(app, MESSY, consent="email", source="sheet")
    assert (imp.status, imp.created) == ("done", 3)
    assert _count(app, ListMember) == 3


def test_tag_combinations_new_in_later_batches_are_tagged_too(app, monkeypatch):
    # Each batch adds only the combinations it brings first; repeats reuse the earlier ones.
    monkeypatch.setattr(import_stage, "BATCH", 2)
    make_contact(app, email="old@example.org")
    rows = ["a1@example.org,red", "a2@example.org,red", "a3@example.org,blue;red",
            "old@example.org,green", "a4@example.org,red|blue", "a5@example.org,green",
            "a6@example.org,"]
    imp = import_csv(app, "email,tags\n" + "\n".join(rows) + "\n", mode="update")
    assert (imp.status, imp.created, imp.updated) == ("done", 6, 1)
    with app.app_context():
        links = db.session().execute(sa.text(
            "SELECT c.email, t.name FROM contact_tags ct JOIN contacts c ON c.id = ct.contact_id "
            "JOIN tags t ON t.id = ct.tag_id ORDER BY c.email, t.name")).all()
    assert [tuple(link) for link in links] == [
        ("a1@example.org", "red"), ("a2@example.org", "red"), ("a3@example.org", "blue"),
        ("a3@example.org", "red"), ("a4@example.org", "blue"), ("a4@example.org", "red"),
        ("a5@example.org", "green"), ("old@example.org", "green")]


def test_a_contact_added_meanwhile_makes_the_first_import_run_again_matching(app, monkeypatch):
    """Into an empty database rows are not looked up; a contact someone adds meanwhile with an
    address of the file is then met by the unique index, and the import runs once more."""
    from outreach.contacts.imports import run_import

    monkeypatch.setattr(import_stage, "BATCH", 2)
    engine = app.extensions["db_engine"]
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite always looks rows up: it locks the database while importing")
    rows = "".join(f"{c}@example.org,{c}\n" for c in "abcdef")
    with app.app_context():
        with db.transaction() as session:
            from outreach.contacts.imports import create_import

            imp = create_import(session, io.BytesIO(("email,first name\n" + rows).encode()),
                                "people.csv", "Supporters")
        seen: list[int] = []

        phases: list[str] = []

        def meanwhile(total: int, percent: int) -> None:
            if not seen:  # after the first batch: "e" is in the third
                make_contact(app, email="e@example.org", first_name="Eve")
            seen.append(total)
            with engine.connect() as conn:  # what the import's page shows
                phases.append(conn.scalar(sa.text("SELECT phase FROM imports WHERE id = :id"),
                                          {"id": imp.id}))

        run_import(imp.id, on_progress=meanwhile)
    assert seen[:1] == [2] and seen.count(2) == 2  # read twice: the first pass was undone
    assert phases[0] == "reading" and phases[-1] == "reading again"
    with app.app_context():
        done = db.session().get(type(imp), imp.id)
        assert (done.status, done.created, done.skipped, done.rejected) == ("done", 5, 1, 0)
    people = contacts_by_email(app)
    assert people["e@example.org"].first_name == "Eve"  # added meanwhile, kept as it was
    assert [p.email for p in people.values()].count("e@example.org") == 1
    assert _count(app, ListMember) == 6
