"""The one suppression implementation behind the pages and the API: search, add, CSV import."""

from __future__ import annotations

import io

import pytest
import sqlalchemy as sa

from outreach import db
from outreach.contacts import suppressions
from outreach.contacts.models import Channel, Suppression
from outreach.exceptions import ValidationError
from tests.contacts.test_pages import make_suppression


def run_import(app, content: bytes, channel: Channel | None = None, reason: str = "imported"):
    with app.app_context(), db.transaction() as session:
        return suppressions.import_file(session, io.BytesIO(content), channel=channel,
                                        reason=reason, region="US", actor=None)


def stored(app) -> dict[tuple[str, str], tuple[str, str]]:
    with app.app_context():
        return {(s.channel, s.address): (s.reason, s.note)
                for s in db.session().scalars(sa.select(Suppression))}


def test_import_reads_every_column_and_reports_each_line(app):
    make_suppression(app, "email", "old@example.org", "hard_bounce")
    report = run_import(app, (b"channel,email,reason,note\n"
                              b"email,New@Example.org,unsubscribed,by letter\n"
                              b"Text,(202) 555-0142,,\n"        # a spreadsheet's word for SMS
                              b"email,old@example.org,spam_report,\n"
                              b"email,new@example.org,,\n"       # repeated in the file
                              b"fax,someone,,\n"
                              b",nobody@example.org,,\n"
                              b"email,not-an-email,,\n"
                              b"sms,2025550143,bored,\n"))
    assert (report.rows_total, report.added, report.existing, report.rejected) == (8, 2, 2, 4)
    assert [line for line, _ in report.rejections] == [6, 7, 8, 9]
    assert report.rejections[0][1] == "unknown channel 'fax' (email or sms)"
    assert report.rejections[3][1] == "unknown reason 'bored'"
    assert stored(app) == {("email", "old@example.org"): ("hard_bounce", ""),
                           ("email", "new@example.org"): ("unsubscribed", "by letter"),
                           ("sms", "+12025550142"): ("imported", suppressions.IMPORTED_NOTE)}


def test_a_rows_own_channel_wins_and_the_given_one_fills_in(app):
    report = run_import(app, b"channel,address\nemail,a@example.org\n,2025550150\n",
                        channel=Channel.SMS)
    assert (report.added, report.rejected) == (2, 0)
    assert set(stored(app)) == {("email", "a@example.org"), ("sms", "+12025550150")}


def test_a_plain_list_of_addresses_keeps_its_first_line(app):
    report = run_import(app, b"first@example.org\nsecond@example.org\n", channel=Channel.EMAIL)
    assert (report.rows_total, report.added) == (2, 2)
    assert set(stored(app)) == {("email", "first@example.org"), ("email", "second@example.org")}
    # a heading that is not an address is a heading, whatever it says
    report = run_import(app, b"Who\nthird@example.org\n", channel=Channel.EMAIL)
    assert (report.rows_total, report.added) == (1, 1)


def test_rejections_are_counted_in_full_but_listed_up_to_the_cap(app, monkeypatch):
    monkeypatch.setattr(suppressions, "MAX_REJECTIONS", 3)
    monkeypatch.setattr(suppressions, "IMPORT_BATCH", 4)  # and batches split the file
    content = "address\n" + "".join(f"bad{i}\n" if i % 2 else f"ok{i}@example.org\n"
                                    for i in range(20))
    report = run_import(app, content.encode(), channel=Channel.EMAIL)
    assert (report.rows_total, report.added, report.rejected) == (20, 10, 10)
    assert [line for line, _ in report.rejections] == [3, 5, 7]


@pytest.mark.parametrize("content,kwargs,field", [
    (b"address\na@example.org\n", {}, "channel"),
    (b"channel,who\nemail,a@example.org\n", {}, "file"),
    (b"%PDF-1.7 binary", {"channel": Channel.EMAIL}, "file"),
    (b"address\na@example.org\n", {"channel": Channel.EMAIL, "reason": "bored"}, "reason"),
])
def test_a_file_that_cannot_be_imported_is_refused_whole(app, content, kwargs, field):
    with pytest.raises(ValidationError) as refused:
        run_import(app, content, **kwargs)
    assert field in refused.value.fields
    assert stored(app) == {}


def test_add_is_idempotent_and_search_finds_any_format(app):
    with app.app_context(), db.transaction() as session:
        row, created = suppressions.add(session, Channel.SMS, "(202) 555-0160", "stop",
                                        "  by phone  ", None, "US")
        again, created_again = suppressions.add(session, Channel.SMS, "+1 202 555 0160",
                                                "manual", "", None, "US")
        assert (created, created_again, again.id, again.reason) == (True, False, row.id, "stop")
        assert row.note == "by phone"
        with pytest.raises(ValidationError):
            suppressions.add(session, Channel.SMS, "+12025550160", "bored", "", None, "US")
        suppressions.add(session, Channel.EMAIL, "Some@Example.org", "manual", "", None, "US")

        def found(**kwargs):
            query = suppressions.search(kwargs.pop("channel", None), "US", **kwargs)
            return sorted(s.address for s in session.scalars(query))

        assert found(address="202.555.0160") == ["+12025550160"]
        assert found(address="555-0160") == []              # an address matches whole
        assert found(text="555-0160") == []                 # not how it is stored
        assert found(text="5550160") == ["+12025550160"]    # part of an address
        assert found(text="(202) 555-0160") == ["+12025550160"]
        assert found(text="SOME@") == ["some@example.org"]
        assert found(text="example", channel=Channel.SMS) == []
