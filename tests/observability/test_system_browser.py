"""The System page in Debian's Chromium on a phone: readable, no script errors, refreshes."""

from __future__ import annotations

import pytest
from rq import Worker

from outreach.queue import connection, enqueue, get_queue
from tests.fixtures.app import make_user, run_jobs
from tests.metrics.test_browser import PHONE, browser, live, sign_in  # noqa: F401 - fixtures
from tests.observability.jobs import fail_for_blast

pytestmark = pytest.mark.browser


def test_system_page_on_a_phone(app, live, browser):  # noqa: F811 - fixtures
    make_user(app, "organizer")
    with app.app_context():
        enqueue("default", fail_for_blast, 1, "a long error " + "x" * 300)
        run_jobs(app)
    client = connection(app)
    worker = Worker([get_queue(name, client) for name in ("prepare", "email", "sms")],
                    connection=client, name="a-worker-with-a-rather-long-name-on-host-1")
    worker.register_birth()
    try:
        context = browser.new_context(base_url=live, viewport=PHONE, is_mobile=True)
        page = sign_in(context, live, "organizer@example.org")
        page.goto("/system")
        assert page.locator("h1").inner_text() == "System"
        assert page.get_by_text("a-worker-with-a-rather-long-name-on-host-1").is_visible()
        assert page.get_by_text("ValueError: a long error").is_visible()
        # Nothing wider than the phone: tables turn into labelled rows.
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        assert page.locator('td[data-label="Waiting"]').first.is_visible()
        # The meta refresh reloads the page by itself (10 s), with no script involved.
        with page.expect_navigation(timeout=15_000):
            pass
        assert page.url.endswith("/system")
        assert page.errors == []
        context.close()
    finally:
        worker.register_death()
