"""Petition pages: the signature count and goal, server-rendered and as JSON for the poll."""

from __future__ import annotations

import sqlalchemy as sa

from outreach import db
from outreach.actions.models import PageStat, Submission
from tests.actions.helpers import make_page, page_row, post


def test_petition_counts_signatures_against_the_goal(app, client):
    page_id = make_page(app, slug="save-the-river", kind="petition", title="Save the river",
                        petition_goal=1000)
    first = client.get("/a/save-the-river").get_data(as_text=True)
    assert "<strong data-count>0</strong> signatures" in first
    assert 'max="1000"' in first and "js/action-count.js" in first
    for n in range(3):
        response = post(client, "save-the-river", first_name=f"Signer{n}",
                        email=f"s{n}@example.org")
        assert response.status_code == 200
    assert page_row(app, page_id).signature_count == 3
    again = client.get("/a/save-the-river").get_data(as_text=True)
    assert "<strong data-count>3</strong> signatures" in again
    assert 'value="3"' in again  # the progress bar, server-rendered for no-JS visitors
    data = client.get("/a/save-the-river/count.json").get_json()
    assert data == {"count": 3, "goal": 1000, "letters_sent": 0}


def test_repeat_signatures_within_a_day_are_counted_once(app, client):
    page_id = make_page(app, slug="petition", kind="petition", title="Sign", petition_goal=10)
    for _ in range(2):
        post(client, "petition", first_name="Ann", email="ann@example.org")
    post(client, "petition", first_name="Ann", email="ANN@example.org ")
    assert page_row(app, page_id).signature_count == 1
    with app.app_context():
        session = db.session()
        assert list(session.scalars(sa.select(Submission.counted).order_by(Submission.id))) == [
            True, False, False]
        stat = session.scalar(sa.select(PageStat).where(PageStat.source == "direct"))
        assert stat is not None and stat.submissions == 1 and stat.new_contacts == 1
        assert stat.views == 3  # each GET of the form
    assert client.get("/a/petition/count.json").get_json()["count"] == 1
