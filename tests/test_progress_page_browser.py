"""The progress page in a real headless browser: Debian's chromium (.ci/run installs it), driven by Playwright,
loading the page over a real local HTTP server (tests/support/page_server.py) in front of the app's functions, with
the sandbox as Partner Center and Azurite as storage. The batch runs in virtual time between two loads.

What a person who has only the page's URL sees: the numbers of the batch resource, a page that reloads itself while
the batch runs and stops when it is final, a company name carrying markup shown as text, no console error and no
CSP violation, and a CSV link that downloads the CSV without a key. A screenshot is saved under the test's
tmp_path (its path is printed).
"""

from __future__ import annotations

import csv
import html
import io
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright
from test_e2e_devhost import ROOT, Client, checked, e2e_env  # noqa: F401 - fixtures

from devhost import DevHost
from localrun.storage import app_queue_service
from sandbox.clock import ManualClock
from sandbox.partner_center import Customer
from sandbox.stack import Sandbox
from support.harness import AppHarness
from support.page_server import PageServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
MARKUP_NAME = '<img src=x onerror=alert(1)>Evil "Co" & Sons'
MARKUP_REASON = "<b>Not eligible</b>: <script>alert(2)</script>"
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
NAVIGATION_TIMEOUT_MS = 60_000  # a loaded machine: generous, and only ever reached on failure

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"chromium is missing at {CHROMIUM}: apt-get install -y chromium (.ci/run does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield launched
        launched.close()


class Tab:
    """One page of the browser, with every console error, page error and CSP violation it reported."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context(accept_downloads=True)
        self.context.set_default_timeout(NAVIGATION_TIMEOUT_MS)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}") if m.type in (
            "error", "warning") else None)  # fmt: skip
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("dialog", lambda d: self.errors.append(f"dialog: {d.message}"))  # alert(): markup ran

    def open(self, url: str) -> Any:
        response = self.page.goto(url, wait_until="load")
        assert response is not None and response.status == 200, url
        return response

    def numbers(self) -> dict[str, int]:
        cells = self.page.locator("table.chart tr").all()
        return {row.get_attribute("data-outcome"): int(row.locator("data").get_attribute("value")) for row in cells}

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(browser: Any) -> Iterator[Tab]:
    opened = Tab(browser)
    yield opened
    opened.close()


def markup_customer(sandbox: Sandbox) -> Customer:
    customer = Customer(str(uuid.uuid4()), eligible=False, reason=MARKUP_REASON, company_name=MARKUP_NAME)
    sandbox.partner_center.add_customer(customer)
    return customer


def test_the_page_in_chromium_shows_the_batch_escapes_markup_refreshes_and_downloads_its_csv(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock, tab: Tab, tmp_path: Path
) -> None:
    markup_customer(sandbox)
    sandbox.add_fleet(6, seed=uuid.uuid4().int % 10**9, mix={"eligible": 3, "notEligible": 3})
    accepted = app.post_batch({"productFamily": "Azure", "mode": "report", "allCustomers": True})
    assert accepted.status == 202, accepted.body
    batch_id = accepted.json()["batchId"]

    with PageServer(app) as server:
        url = server.url_for(accepted.header("Location") or "")
        running = tab.open(url)
        assert (
            running.headers["content-security-policy"] == "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
        )
        assert tab.page.locator('meta[http-equiv="refresh"]').get_attribute("content") == "10"
        assert tab.page.locator("#status").inner_text() == "Running"

        app.virtual_queues(virtual_clock).run()

        tab.open(url)
        final = app.follow(url).json()  # the batch resource, as JSON, from the same link
        assert final["status"] == "Completed"
        assert tab.page.locator('meta[http-equiv="refresh"]').count() == 0
        assert tab.numbers() == final["counts"]
        assert tab.page.locator("#total").get_attribute("value") == str(final["total"])
        assert tab.page.locator("#done").get_attribute("value") == str(final["total"])
        reasons = tab.page.locator("table.reasons").inner_text()
        assert MARKUP_NAME in reasons and MARKUP_REASON in reasons  # shown as text, not run or rendered
        assert tab.page.locator("main img, main script, main b").count() == 0
        screenshot = tmp_path / "progress-page.png"
        tab.page.screenshot(path=str(screenshot), full_page=True)
        print(f"progress page screenshot: {screenshot}")

        with tab.page.expect_download() as info:
            tab.page.click("#csv")
        table = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text(encoding="utf-8"))))

    assert info.value.suggested_filename == f"batch-{batch_id}.csv"
    by_name = {row["companyName"]: row for row in table}
    assert (by_name[MARKUP_NAME]["outcome"], by_name[MARKUP_NAME]["reason"]) == ("notEligible", MARKUP_REASON)
    assert len(table) == final["total"]
    paths = [path for path, _ in server.requests]
    assert paths[-1].startswith(f"/api/follow/batches/{batch_id}/customers?expires=")  # the click, to the CSV link
    assert all("x-functions-key" not in headers and "code=" not in path for path, headers in server.requests)
    assert tab.errors == []
    assert screenshot.stat().st_size > 10_000


# --- the same links through Microsoft's worker (devhost routes by Follow/function.json) ---------------------


@pytest.fixture
def worker_app(
    e2e_env: dict[str, str],  # noqa: F811 - the fixture
    configure: Callable[..., None],
    checked: list[Client],  # noqa: F811
) -> Iterator[Client]:
    fast = {"PARTNER_CENTER_BATCH_CALLS_PER_MINUTE": "6000"}
    configure(**fast)
    host = DevHost(ROOT, http_port=0, environ=e2e_env | fast, queue_service=app_queue_service).start()
    client = Client(host.url)
    checked.append(client)
    yield client
    host.stop()


def test_the_page_and_its_csv_link_route_through_the_worker_without_a_key(worker_app: Client, sandbox: Sandbox) -> None:
    customer = markup_customer(sandbox)
    body = {"productFamily": "Azure", "mode": "report", "customerIds": [customer.customer_id]}
    accepted = worker_app.request("POST", "/api/batches", json=body)
    assert accepted.status_code == 202, accepted.text
    worker_app.follow(accepted.headers["Location"], until=lambda r: r.status_code == 200, timeout=45)

    page = worker_app.request("GET", accepted.headers["Location"], headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    [link] = re.findall(r'<a class="csv" id="csv" href="([^"]+)"', page.text)
    download = worker_app.request("GET", html.unescape(link), headers={"Accept": BROWSER_ACCEPT})
    assert download.status_code == 200, download.text
    assert download.headers["Content-Disposition"].startswith("attachment;")
    [row] = list(csv.DictReader(io.StringIO(download.text)))
    assert (row["customerId"], row["outcome"], row["reason"]) == (customer.customer_id, "notEligible", MARKUP_REASON)
