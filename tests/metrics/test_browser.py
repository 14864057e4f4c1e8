"""The metrics pages in Debian's Chromium: the chart draws, filters and CSV work on a phone, and a
supporter unsubscribes through an email's footer link."""

from __future__ import annotations

import csv
import os
import shutil
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from outreach import db
from outreach.channels.models import OutboxEmail
from tests.fixtures.app import PASSWORD, make_user, run_jobs
from tests.fixtures.blasts import audience
from tests.fixtures.services import require
from tests.metrics import APPLE_IP, SCANNER, P, hit
from tests.tracking import sent_email_blast, suppression

pytestmark = pytest.mark.browser
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
PHONE = {"width": 390, "height": 844}
CHART_SUMS = """id => {
  const chart = Chart.getChart(document.getElementById(id));
  return chart.data.datasets.map(d => d.data.reduce((a, b) => a + b, 0));
}"""


def chromium() -> str:
    """Debian's Chromium, or a skip (a failure under CI) naming what is missing."""
    path = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
    if not os.path.exists(path):
        require("Debian's chromium is not installed (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        require("the playwright Python package is not installed")
    return path


@pytest.fixture
def live(app) -> Iterator[str]:
    """The app served over real HTTP on a free local port; links in emails point at it."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    previous = app.config["PUBLIC_BASE_URL"]
    app.config["PUBLIC_BASE_URL"] = base
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield base
    server.shutdown()
    thread.join(5)
    app.config["PUBLIC_BASE_URL"] = previous


@pytest.fixture
def browser(live) -> Iterator[Any]:
    """A headless Chromium driven by Playwright."""
    executable = chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=executable, args=ARGS)
        yield instance
        instance.close()


def finished_blast(app, client) -> tuple[int, dict[str, str]]:
    """An email blast to p0..p4 sent through the outbox, with human and machine engagement."""
    list_id = audience(app, 5)
    blast_id, _, tokens = sent_email_blast(app, list_id=list_id)
    hit(client, f"/o/{tokens[P[0]]}.gif")
    hit(client, f"/o/{tokens[P[1]]}.gif")
    hit(client, f"/o/{tokens[P[3]]}.gif", ua="Mozilla/5.0", ip=APPLE_IP)  # Apple's proxy
    hit(client, f"/c/{tokens[P[0]]}/0")
    hit(client, f"/c/{tokens[P[2]]}/1", ua=SCANNER)  # a link scanner
    run_jobs(app)
    return blast_id, tokens


def sign_in(context: Any, base: str, email: str) -> Any:
    """A page of the context signed in through the login form; script errors are collected."""
    page = context.new_page()
    page.errors = []
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.goto("/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    return page


def test_metrics_page_chart_filter_and_csv_on_a_phone(app, client, live, browser, tmp_path):
    from playwright.sync_api import expect

    blast_id, _ = finished_blast(app, client)
    make_user(app, "viewer", "viewer@example.org")
    context = browser.new_context(viewport=PHONE, base_url=live, accept_downloads=True)
    page = sign_in(context, live, "viewer@example.org")
    page.goto(f"/blasts/{blast_id}/metrics")
    page.wait_for_function("() => window.Chart && Chart.getChart("
                           "document.getElementById('timeline-chart'))")
    human_opens, machine_opens, human_clicks, machine_clicks = page.evaluate(
        CHART_SUMS, "timeline-chart")
    assert (human_opens, machine_opens, human_clicks, machine_clicks) == (2, 1, 1, 1)
    box = page.locator("#timeline-chart").bounding_box()
    assert box and 0 < box["width"] <= PHONE["width"] and box["height"] > 100
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    expect(page.locator('[data-figure="sent"]')).to_have_text("5")
    expect(page.locator("#row-opens td").first).to_have_text("2")

    page.select_option("#outcome", "opened")
    page.click("#filter-recipients")
    page.wait_for_url("**outcome=opened**")
    cells = page.locator('.metrics-recipients td[data-label="Recipient"] a')
    expect(cells).to_have_text(P[:2])

    with page.expect_download() as info:
        page.click("#export-csv")
    download = info.value
    assert download.suggested_filename == f"blast-{blast_id}-recipients-opened.csv"
    target = tmp_path / download.suggested_filename
    download.save_as(target)
    with target.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["address"], r["opens"], r["clicks"]) for r in rows] == [
        (P[0], "1", "1"), (P[1], "1", "0")]

    page.goto("/metrics")
    page.wait_for_function("() => window.Chart && Chart.getChart("
                           "document.getElementById('growth-chart'))")
    assert page.evaluate(CHART_SUMS, "growth-chart")[0] == 5  # five new contacts today
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert page.errors == []
    context.close()


def test_supporter_unsubscribes_through_the_footer_link(app, client, live, browser):
    from playwright.sync_api import expect

    blast_id, _ = finished_blast(app, client)
    with app.app_context():
        email_id = db.session().scalar(sa.select(OutboxEmail.id).where(
            OutboxEmail.to_email.contains(P[4])))
    make_user(app, "viewer", "viewer@example.org")
    staff = browser.new_context(base_url=live)
    page = sign_in(staff, live, "viewer@example.org")
    page.goto(f"/outbox/emails/{email_id}")
    footer = page.frame_locator("iframe.email-frame").get_by_role("link", name="Unsubscribe")
    href = footer.get_attribute("href")
    assert href.startswith(f"{live}/u/")

    supporter = browser.new_context(viewport=PHONE)  # no staff cookies
    mail = supporter.new_page()
    mail.goto(href)
    expect(mail.get_by_role("heading", name="Unsubscribe")).to_be_visible()
    assert suppression(app, "email", P[4]) is None  # opening the page changes nothing
    mail.get_by_role("button", name="Unsubscribe").click()
    expect(mail.get_by_role("status")).to_have_text("You are unsubscribed")
    assert suppression(app, "email", P[4]) == "unsubscribed"
    supporter.close()

    page.goto(f"/blasts/{blast_id}/metrics?outcome=unsubscribed")
    expect(page.locator('[data-figure="unsubscribed"]')).to_have_text("1")
    expect(page.locator('.metrics-recipients td[data-label="Recipient"] a')).to_have_text(
        [P[4]])
    staff.close()
