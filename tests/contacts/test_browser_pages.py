"""The contacts pages in a real browser: the scripts work under the CSP, and phones fit."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator

import pytest
from werkzeug.serving import make_server

from tests.contacts.test_pages import make_contact, make_list
from tests.fixtures.app import PASSWORD, make_user, run_jobs

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def live(app) -> Iterator[str]:
    """The app served over HTTP on a free local port."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


@pytest.fixture
def page(live, app):
    """A phone-sized Chromium page signed in as an organizer; fails on CSP or script errors."""
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    make_user(app, "organizer", "org@example.org")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 320, "height": 640}, base_url=live)
        tab = context.new_page()
        problems: list[str] = []
        tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda exc: problems.append(str(exc)))
        tab.goto("/login")
        tab.fill("#email", "org@example.org")
        tab.fill("#password", PASSWORD)
        tab.click("button[type=submit]")
        tab.wait_for_url(f"{live}/")
        yield tab
        browser.close()
        assert problems == []


def _fits(tab) -> None:
    """Nothing makes the page scroll sideways at 320 px."""
    assert tab.evaluate("document.documentElement.scrollWidth") <= 320


def test_segment_builder_counts_live_and_adds_rows(app, page):
    from playwright.sync_api import expect

    donors = make_list(app, "Donors")
    make_contact(app, email="a@example.org", lists=[donors], tags=["vip"])
    make_contact(app, email="b@example.org", tags=["vip"])
    make_contact(app, email="c@example.org")
    page.goto("/segments/new")
    expect(page.locator("#preview-count")).to_have_text("3 contacts match.")
    assert page.locator("li.rule-row:visible").count() == 1  # the blank rows wait
    page.select_option("#field-0", "tag")
    assert page.locator("#op-0 option:not([hidden])").all_inner_texts() == [
        "has", "does not have"]
    assert page.locator("#key-0").is_hidden()
    page.fill("#value-0", "vip")
    expect(page.locator("#preview-count")).to_have_text("2 contacts match.")
    page.click("#add-rule")
    page.select_option("#field-1", "list")
    page.select_option("#op-1", "in")
    page.fill("#value-1", "Donors")
    expect(page.locator("#preview-count")).to_have_text("1 contact matches.")
    page.select_option("#field-1", "email")
    page.select_option("#op-1", "empty")
    assert page.locator("#value-1").is_hidden()
    expect(page.locator("#preview-count")).to_have_text("0 contacts match.")
    page.locator("li.rule-row").nth(1).locator(".rule-remove").click()
    expect(page.locator("#preview-count")).to_have_text("2 contacts match.")
    _fits(page)
    page.fill("#segment-name", "VIPs")
    page.click("button[value=save]")
    page.wait_for_url("**/segments/*")
    assert "Segment “VIPs” saved." in page.content()


def test_import_progress_page_updates_and_shows_the_report(app, page, tmp_path):
    page.goto("/imports/new")
    _fits(page)
    csv_file = tmp_path / "people.csv"
    csv_file.write_bytes(b"email;first name\nann@example.org;Ann\nnope;Bad\n")
    page.set_input_files("#import-file", str(csv_file))
    page.select_option("#import-list", "new")
    page.fill("#import-new-list", "Spring")
    page.click("button.primary")
    page.wait_for_url("**/mapping")
    assert "semicolon" in page.content()
    _fits(page)
    page.click("text=Confirm and import")
    page.wait_for_url("**/imports/*")
    assert page.locator("progress").count() == 1
    run_jobs(app)  # the browser keeps polling meanwhile, then reloads for the report
    page.wait_for_selector("text=Download rejected rows (CSV)", timeout=30_000)
    assert "created" in page.content()
    _fits(page)


def test_contact_and_list_pages_fit_a_phone(app, page):
    contact_id = make_contact(app, email="a-very-long-address-for-a-phone@example.org",
                              first_name="Ann", fields={"note": "x" * 80}, tags=["vip"])
    for path in ("/contacts", f"/contacts/{contact_id}", "/lists", "/segments",
                 "/suppressions", "/imports"):
        page.goto(path)
        _fits(page)
