"""CSV import: modes, dedupe, consent never regained, rejections with line numbers, bad files."""

from __future__ import annotations

import csv
import io
import json

import pytest
import sqlalchemy as sa

from outreach import db
from outreach.contacts import consent, service
from outreach.contacts.imports import create_import, queue_import
from outreach.contacts.models import (
    Channel,
    ConsentEvent,
    ConsentStatus,
    Contact,
    ContactList,
    ContactTag,
    Import,
    ListMember,
    Suppression,
    Tag,
)
from outreach.exceptions import ValidationError
from outreach.files.models import StoredFile
from tests.fixtures.app import run_jobs
from tests.fixtures.contacts import contacts_by_email, import_csv, make_contact

MESSY = (
    "\ufeffE-mail;Mobile Phone;First Name;Last Name;zip;Favorite Color;Tags\n"
    "Ann@Example.ORG;(212) 555-0101;Ann;Lee;10001;red;volunteer,donor\n"
    "not-an-email;;Bob;;;;\n"
    "carl@example.org;415 555 0199;Carl;\"Multi\nLine\";94110;blue;volunteer\n"
    ";;Nobody;;;;\n"
    "ann@example.org;;Duplicate;;;;\n"
    "dora@example.org;555;Dora;;;;\n"
    "\n"
    ";+1 602 555 0123;Phone Only;;;;\n"
    "eve@example.org;(602) 555-0123;Eve Same Phone;;;;\n"
)


def _rejections(app, import_id):
    with app.app_context():
        from outreach.contacts.imports import rejections_csv

        text = "".join(rejections_csv(db.session(), import_id))
    return list(csv.reader(io.StringIO(text)))


def test_messy_file_imports_valid_rows_and_reports_each_rejected_line(app):
    imp = import_csv(app, MESSY, consent="email", source="Rally sign-up sheet")
    assert (imp.status, imp.rows_total, imp.created, imp.rejected) == ("done", 8, 3, 5)
    people = contacts_by_email(app)
    assert set(people) == {"ann@example.org", "carl@example.org", "+16025550123"}
    ann = people["ann@example.org"]
    assert (ann.phone, ann.first_name, ann.postal_code) == ("+12125550101", "Ann", "10001")
    assert (ann.timezone, ann.region, ann.fields) == ("America/New_York", "NY",
                                                      {"favorite_color": "red"})
    assert people["carl@example.org"].last_name == "Multi\nLine"
    rows = _rejections(app, imp.id)
    assert rows[0] == ["line", "reason"]
    reasons = {int(r[0]): r[1] for r in rows[1:]}
    # The quoted newline in Carl's row makes the lines after it one further down.
    assert set(reasons) == {3, 6, 7, 8, 11}
    assert reasons[3].startswith("invalid email")
    assert reasons[6] == "no email or phone"
    assert reasons[7] == "duplicate in file (same email as line 2)"
    assert reasons[8].startswith("invalid phone")
    assert reasons[11] == "duplicate in file (same phone as line 10)"
    assert [r for r in rows if r[0] == "3"][0][2:5] == ["not-an-email", "", "Bob"]


def test_list_tags_and_consent_are_recorded_with_their_source(app):
    imp = import_csv(app, MESSY, consent="email", source="Rally sign-up sheet")
    with app.app_context():
        session = db.session()
        members = session.scalar(sa.select(sa.func.count()).select_from(ListMember))
        assert members == 3
        assert session.scalar(sa.select(ContactList.name)) == "Supporters"
        tagged = dict(session.execute(sa.select(Tag.name, sa.func.count()).join(ContactTag)
                                      .group_by(Tag.name)).all())
        assert tagged == {"volunteer": 2, "donor": 1}
        events = session.scalars(sa.select(ConsentEvent)).all()
        # Two contacts have an email; the phone-only contact gets no email consent.
        assert len(events) == 2 and {e.status for e in events} == {"granted"}
        assert events[0].source == "import"
        assert events[0].evidence["consent_source"] == "Rally sign-up sheet"
        assert events[0].evidence["file"] == "people.csv"
        assert events[0].evidence["import_id"] == imp.id
        phone_only = session.scalar(sa.select(Contact).where(Contact.email.is_(None)))
        assert phone_only.email_consent == "none" and phone_only.sms_consent == "none"


def test_running_the_same_file_again_changes_nothing(app):
    import_csv(app, MESSY, consent="email", source="x")
    before = contacts_by_email(app)
    again = import_csv(app, MESSY, consent="email", source="x")
    assert (again.created, again.skipped, again.updated) == (0, 3, 0)
    after = contacts_by_email(app)
    stamps = {k: v.updated_at for k, v in before.items()}
    assert stamps == {k: v.updated_at for k, v in after.items()}
    with app.app_context():
        assert db.session().scalar(sa.select(sa.func.count()).select_from(ConsentEvent)) == 2


def test_add_mode_leaves_existing_contacts_alone(app):
    make_contact(app, email="ann@example.org", first_name="Annabel", fields={"city": "NYC"})
    imp = import_csv(app, "email,first name,city\n"
                          "ann@example.org,Ann,Boston\nzed@example.org,Zed,LA\n")
    assert (imp.created, imp.skipped, imp.updated) == (1, 1, 0)
    ann = contacts_by_email(app)["ann@example.org"]
    assert ann.first_name == "Annabel" and ann.fields == {"city": "NYC"}


def test_update_mode_fills_and_changes_fields_but_keeps_what_is_not_in_the_file(app):
    make_contact(app, email="ann@example.org", first_name="Annabel", last_name="Lee",
                 fields={"city": "NYC", "shirt": "M"})
    make_contact(app, phone="+12125550177", first_name="Phone Person")
    imp = import_csv(app, "email,phone,first name,city\n"
                          "ann@example.org,,Ann,Boston\n"
                          "pat@example.org,212-555-0177,Pat,\n", mode="update")
    assert (imp.created, imp.updated) == (0, 2)
    people = contacts_by_email(app)
    ann = people["ann@example.org"]
    assert (ann.first_name, ann.last_name) == ("Ann", "Lee")
    assert ann.fields == {"city": "Boston", "shirt": "M"}
    pat = people["pat@example.org"]  # matched by phone; the missing email was filled in
    assert (pat.phone, pat.first_name) == ("+12125550177", "Pat")


def test_update_never_steals_a_phone_from_another_contact(app):
    make_contact(app, email="ann@example.org")
    make_contact(app, email="bo@example.org", phone="+12125550188")
    imp = import_csv(app, "email,phone\nann@example.org,2125550188\n", mode="update")
    assert imp.status == "done"
    people = contacts_by_email(app)
    assert people["ann@example.org"].phone is None
    assert people["bo@example.org"].phone == "+12125550188"


def test_an_import_never_grants_back_a_revoked_consent(app):
    contact_id = make_contact(app, email="ann@example.org", phone="+12125550101")
    with app.app_context(), db.transaction() as session:
        contact = session.get(Contact, contact_id)
        consent.record_consent(session, contact, Channel.EMAIL, ConsentStatus.REVOKED,
                               "unsubscribe", {"page": "footer"})
    for mode in ("add", "update"):
        import_csv(app, "email,phone\nann@example.org,212-555-0101\n", mode=mode,
                   consent="email,sms", source="old petition")
    ann = contacts_by_email(app)["ann@example.org"]
    assert ann.email_consent == "revoked" and ann.sms_consent == "granted"
    with app.app_context():
        assert consent.ledger_consent(db.session(), contact_id, Channel.EMAIL) is \
            ConsentStatus.REVOKED


def test_an_import_never_removes_a_suppression_or_consents_a_suppressed_address(app):
    with app.app_context(), db.transaction() as session:
        consent.suppress(session, Channel.SMS, "+12125550101", "stop", "replied STOP")
    import_csv(app, "email,phone\nann@example.org,212-555-0101\n", mode="update",
               consent="email,sms", source="sheet")
    ann = contacts_by_email(app)["ann@example.org"]
    assert ann.email_consent == "granted" and ann.sms_consent == "none"
    with app.app_context():
        assert db.session().scalar(sa.select(Suppression.reason)) == "stop"


def test_dedupe_against_the_database_by_email_then_phone(app):
    make_contact(app, email="ann@example.org")
    make_contact(app, phone="+14155550199")
    imp = import_csv(app, "email,phone\nANN@example.org,\nnew@example.org,4155550199\n")
    assert (imp.created, imp.skipped) == (0, 2)
    assert len(contacts_by_email(app)) == 2


def test_erased_contact_is_not_resubscribed_by_a_reimport(app):
    contact_id = make_contact(app, email="gone@example.org", phone="+12125550142")
    with app.app_context(), db.transaction() as session:
        service.erase_contact(session, contact_id)
    imp = import_csv(app, "email,phone\ngone@example.org,\n,212-555-0142\nok@example.org,\n",
                     consent="email,sms", source="sheet")
    assert (imp.created, imp.rejected) == (1, 2)
    assert set(contacts_by_email(app)) == {"ok@example.org"}
    reasons = [r[1] for r in _rejections(app, imp.id)[1:]]
    assert all("erased on request" in r for r in reasons)


@pytest.mark.parametrize("encoding,delimiter", [("utf-16", ","), ("cp1252", ";"),
                                                ("utf-8", "\t")])
def test_encodings_and_delimiters(app, encoding, delimiter):
    text = delimiter.join(["Email Address", "First Name", "Last Name"]) + "\r\n" + \
        delimiter.join(["renee@example.org", "Renée", "Müller"]) + "\r\n"
    imp = import_csv(app, text.encode(encoding))
    assert imp.created == 1
    renee = contacts_by_email(app)["renee@example.org"]
    assert (renee.first_name, renee.last_name) == ("Renée", "Müller")


def test_a_row_with_ten_thousand_columns_is_rejected_alone(app):
    wide = "x@example.org," + ",".join(["v"] * 10_000)
    imp = import_csv(app, f"email,name\nok@example.org,Ok\n{wide}\nfine@example.org,Fine\n")
    assert (imp.created, imp.rejected) == (2, 1)
    rows = _rejections(app, imp.id)
    assert rows[1][0] == "3" and "10001 values" in rows[1][1].replace(",", "")


@pytest.mark.parametrize("content,message", [
    (b"", "empty"),
    (b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 100, "Excel"),
    (b"name,city\nAnn,Boston\n", "No email or phone column"),
])
def test_bad_files_are_refused_at_upload_and_nothing_is_written(app, content, message):
    with app.app_context():
        with pytest.raises(ValidationError, match=message), db.transaction() as session:
            create_import(session, io.BytesIO(content), "bad.csv", "L", "add", "", "")
        session = db.session()
        for model in (Import, StoredFile, ContactList, Contact):
            assert session.scalar(sa.select(sa.func.count()).select_from(model)) == 0


def test_options_are_checked(app):
    with app.app_context():
        for mode, consent_value, source, field in [("merge", "", "", "mode"),
                                                   ("add", "fax", "", "consent"),
                                                   ("add", "email", "", "consent_source")]:
            with pytest.raises(ValidationError) as err, db.transaction() as session:
                create_import(session, io.BytesIO(b"email\na@b.org\n"), "f.csv", None, mode,
                              consent_value, source)
            assert field in err.value.fields


def test_a_failure_while_applying_leaves_no_half_written_contact(app):
    """A real database error in the middle of applying rolls the whole import back."""
    engine = app.extensions["db_engine"]
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("CREATE OR REPLACE FUNCTION outreach_test_boom() RETURNS trigger "
                                 "AS $$ BEGIN RAISE EXCEPTION 'boom'; END $$ LANGUAGE plpgsql"))
            conn.execute(sa.text("CREATE TRIGGER boom BEFORE INSERT ON list_members "
                                 "FOR EACH ROW EXECUTE FUNCTION outreach_test_boom()"))
        else:
            conn.execute(sa.text("CREATE TRIGGER boom BEFORE INSERT ON list_members "
                                 "BEGIN SELECT RAISE(ABORT, 'boom'); END"))
    try:
        failed = import_csv(app, MESSY, consent="email", source="x")
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TRIGGER boom" + (" ON list_members"
                                 if conn.dialect.name == "postgresql" else "")))
    assert failed.status == "failed" and "nothing was imported" in failed.error
    with app.app_context():
        session = db.session()
        for model in (Contact, ConsentEvent, ListMember, ContactTag):
            assert session.scalar(sa.select(sa.func.count()).select_from(model)) == 0
        # Running it again (the job retried) completes the import.
        queue_import(failed.id)
    run_jobs(app)
    with app.app_context():
        done = db.session().get(Import, failed.id)
        assert (done.status, done.created, done.rejected) == ("done", 3, 5)


def test_import_runs_on_a_real_worker(app):
    with app.app_context():
        with db.transaction() as session:
            imp = create_import(session, io.BytesIO(b"email\na@example.org\nb@example.org\n"),
                                "w.csv", "Workers", "add", "", "")
        queue_import(imp.id)
    run_jobs(app, fork=True)
    with app.app_context():
        done = db.session().get(Import, imp.id)
        assert (done.status, done.created, done.progress) == ("done", 2, 100)


def test_cli_import_with_progress_and_summary(app, runner, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text(MESSY, encoding="utf-8")
    result = runner.invoke(args=["contacts", "import", str(path), "--list", "Rally",
                                 "--consent", "email", "--consent-source", "Rally sheet"])
    assert result.exit_code == 0, result.output
    assert "8 rows" in result.output and "3 created" in result.output
    assert "5 rejected" in result.output
    rejected = runner.invoke(args=["contacts", "rejections", "1"])
    assert rejected.output.startswith("line,reason")


def test_cli_import_refuses_a_bad_file(app, runner, tmp_path):
    path = tmp_path / "names.csv"
    path.write_text("name\nAnn\n")
    result = runner.invoke(args=["contacts", "import", str(path), "--list", "X"])
    assert result.exit_code == 1 and "No email or phone column" in result.output


def test_custom_fields_and_values_are_stored_as_text(app):
    import_csv(app, 'email,Favorite Color,Notes\na@example.org,green,"Met at rally, said hi"\n')
    person = contacts_by_email(app)["a@example.org"]
    assert person.fields == {"favorite_color": "green", "notes": "Met at rally, said hi"}
    assert json.dumps(person.fields)
