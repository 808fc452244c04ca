"""The progress page (docs/design.md, "Progress page"): a browser that asks `GET /api/batches/{id}` or the batch's
follow link gets an HTML page; every other client gets the JSON it got before. Content negotiation and the renderer
are tested as pure rules; the routes through the harness with the sandbox and Azurite (the browser itself:
tests/test_progress_page_browser.py).
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from sandbox.clock import ManualClock
from sandbox.partner_center import Customer
from sandbox.stack import Sandbox
from shared.api.accept import prefers
from shared.api.progress_page import HEADERS, render
from shared.batches.model import CustomerRow, Outcome
from shared.batches.reasons import ReasonCount, count_reasons
from support.harness import BASE_URL, Answer, AppHarness

CHROMIUM_ACCEPT = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,"
    "application/signed-exchange;v=b3;q=0.7"
)
OFFERED = ["application/json", "text/html"]
MARKUP = '<img src=x onerror=alert(1)> "Evil" & Co'
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


# --- Accept (RFC 9110 §12.5.1) -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (CHROMIUM_ACCEPT, "text/html"),  # what a browser sends for a link it opens
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "text/html"),  # Firefox
        (None, "application/json"),  # no Accept: anything, the first offered
        ("", "application/json"),
        ("*/*", "application/json"),  # a tie: the first offered wins
        ("application/json", "application/json"),
        ("text/html, application/json", "application/json"),  # a tie again
        ("text/html;q=0.5, application/json", "application/json"),
        ("application/json;q=0.4, text/*", "text/html"),  # text/* matches text/html
        ("text/html;q=0, */*", "application/json"),  # q=0: never text/html
        ("TEXT/HTML", "text/html"),  # media types are case-insensitive
        ("text/html;level=1, application/json;q=0.5", "application/json"),  # a range with parameters is narrower
        ("text/html;q=1.5, application/json;q=0.1", "application/json"),  # a malformed q: that range is skipped
        ("image/png", None),  # nothing offered is acceptable
        ("nonsense, text/html;q=0.9", "text/html"),
    ],
)
def test_prefers_picks_the_offered_type_with_the_highest_quality(accept: str | None, chosen: str | None) -> None:
    assert prefers(accept, OFFERED) == chosen


def test_the_most_specific_range_sets_the_quality() -> None:
    assert prefers("text/*;q=0.2, text/html;q=0.9, application/json;q=0.5", OFFERED) == "text/html"
    assert prefers("text/*;q=0.9, text/html;q=0.1, application/json;q=0.5", OFFERED) == "application/json"


# --- the renderer ------------------------------------------------------------------------------------------


def resource(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "batchId": "6f1c1b8e-52a4-4d0e-a0a5-5b0d8b7a3c11",
        "mode": "report",
        "productFamily": "Azure",
        "status": "Running",
        "total": 10,
        "counts": {
            "pending": 4,
            "eligible": 3,
            "notEligible": 2,
            "hasUpgrade": 0,
            "upgrading": 0,
            "completed": 0,
            "failed": 0,
            "error": 1,
        },
        "createdAt": "2026-12-05T10:00:00Z",
        "updatedAt": "2026-12-05T10:01:00Z",
        "completedAt": None,
        "customersUri": f"{BASE_URL}/api/batches/6f1c1b8e-52a4-4d0e-a0a5-5b0d8b7a3c11/customers",
    }
    return base | changes


def chart(page: str) -> dict[str, int]:
    found = re.findall(r'<tr data-outcome="([^"]+)">.*?<data value="([0-9]+)">', page)
    return {outcome: int(count) for outcome, count in found}


def test_the_page_shows_every_count_the_progress_and_refreshes_while_running() -> None:
    page = render(resource(), [], "https://x.test/csv", 10)

    assert chart(page) == resource()["counts"]
    assert '<data id="done" value="6">6</data>' in page and '<data id="total" value="10">10</data>' in page
    assert 'style="width:60.0%"' in page  # the progress bar
    assert '<meta http-equiv="refresh" content="10">' in page


def test_a_final_batch_does_not_refresh_and_shows_its_completion() -> None:
    done = resource(status="Completed", completedAt="2026-12-05T10:05:00Z",
                    counts={"pending": 0, "eligible": 7, "notEligible": 2, "error": 1})  # fmt: skip
    page = render(done, [], "https://x.test/csv", None)

    assert "http-equiv" not in page
    assert "<th>Completed</th>" in page and "2026-12-05 10:05:00 UTC" in page
    assert 'style="width:100.0%"' in page


def test_every_value_from_partner_center_or_the_resource_is_escaped() -> None:
    reasons = [ReasonCount("notEligible", "<script>alert(2)</script>", 2, (MARKUP,))]
    page = render(resource(status="<b>Running</b>", fromBatch='"><svg onload=x>'), reasons,
                  'https://x.test/csv?a=1&b="2"', 10)  # fmt: skip

    for raw in ("<script>", "<img", "<svg", "<b>Running", 'b="2"'):
        assert raw not in page
    assert "&lt;img src=x onerror=alert(1)&gt; &quot;Evil&quot; &amp; Co" in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page
    assert 'href="https://x.test/csv?a=1&amp;b=&quot;2&quot;"' in page


def test_fields_a_campaign_adds_show_when_present() -> None:
    campaign = resource(status="Scheduled", notBefore="2026-12-06T08:00:00Z", fromBatch="1e0b7a9c-0000-4000-8000-1",
                        estimatedCompletionAt="2026-12-06T09:30:00Z",
                        counts={"pending": 8, "eligible": 0, "cancelled": 2})  # fmt: skip
    page = render(campaign, [], "https://x.test/csv", 10)

    assert "<th>Scheduled for</th>" in page and "2026-12-06 08:00:00 UTC" in page
    assert "<th>Estimated completion</th>" in page and "2026-12-06 09:30:00 UTC" in page
    assert "<th>Customers from batch</th>" in page and "1e0b7a9c-0000-4000-8000-1" in page
    assert chart(page)["cancelled"] == 2
    plain = render(resource(), [], "https://x.test/csv", 10)
    assert "Scheduled for" not in plain and "from batch" not in plain and "Estimated" not in plain


def test_reasons_are_counted_most_common_first_with_a_few_company_names() -> None:
    def row(outcome: Outcome, reason: str | None, name: str | None = None) -> CustomerRow:
        return CustomerRow(str(uuid.uuid4()), outcome, company_name=name, reason=reason)

    rows = [row(Outcome.ERROR, "refused", "A"), *(row(Outcome.NOT_ELIGIBLE, "no subs", f"N{i}") for i in range(5)),
            row(Outcome.ERROR, "refused", "B"), row(Outcome.ERROR, None)]  # fmt: skip
    assert count_reasons(rows) == [
        ReasonCount("notEligible", "no subs", 5, ("N0", "N1", "N2")),
        ReasonCount("error", "refused", 2, ("A", "B")),
        ReasonCount("error", "(no reason given)", 1, ()),
    ]
    many = [row(Outcome.NOT_ELIGIBLE, f"reason {i}") for i in range(15)]
    assert len(count_reasons(many)) == 10


# --- the routes --------------------------------------------------------------------------------------------


def query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def csv_link(page: Answer) -> str:
    [href] = re.findall(r'<a class="csv" id="csv" href="([^"]+)"', page.body.decode())
    return href.replace("&amp;", "&")


def started(app: AppHarness, sandbox: Sandbox) -> Answer:
    not_eligible = Customer(str(uuid.uuid4()), eligible=False, reason="No Azure subscriptions.")
    sandbox.partner_center.add_customer(not_eligible)
    body = {"productFamily": "Azure", "mode": "report", "customerIds": [not_eligible.customer_id]}
    answer = app.post_batch(body)
    assert answer.status == 202, answer.body
    return answer


def test_a_browser_gets_the_page_and_every_other_client_the_json_it_got_before(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    batch_id = started(app, sandbox).json()["batchId"]

    page = app.get_batch(batch_id, {"Accept": CHROMIUM_ACCEPT})
    assert page.status == 200
    assert page.content_type == "text/html; charset=utf-8"
    assert {name: page.header(name) for name in HEADERS} == HEADERS
    assert page.header("Content-Security-Policy") == CSP
    assert '<meta http-equiv="refresh" content="10">' in page.body.decode()
    assert csv_link(page) == f"{BASE_URL}/api/batches/{batch_id}/customers"  # the keyed route: its caller has the key
    for accept in (None, "application/json", "*/*", "image/png"):
        answer = app.get_batch(batch_id, {"Accept": accept} if accept else {})
        assert (answer.status, answer.content_type) == (202, "application/json"), accept
        assert answer.header("Content-Security-Policy") is None

    app.virtual_queues(virtual_clock).run()

    final = app.get_batch(batch_id, {"Accept": CHROMIUM_ACCEPT}).body.decode()
    assert "http-equiv" not in final
    assert "No Azure subscriptions." in final
    assert app.get_batch(batch_id).status == 200


def test_the_follow_page_links_a_signed_csv_that_answers_only_its_own_path(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    answer = started(app, sandbox)
    batch_id, location = answer.json()["batchId"], answer.header("Location") or ""
    app.virtual_queues(virtual_clock).run()

    page = app.follow(location, {"Accept": CHROMIUM_ACCEPT})
    assert page.status == 200 and page.content_type.startswith("text/html")
    link = csv_link(page)
    assert link.startswith(f"{BASE_URL}/api/follow/batches/{batch_id}/customers?expires=")

    download = app.follow(link, {"Accept": CHROMIUM_ACCEPT})  # a click: a browser's Accept, no key
    assert download.status == 200
    assert download.content_type == "text/csv; charset=utf-8"
    assert download.header("Content-Disposition") == f'attachment; filename="batch-{batch_id}.csv"'
    [row] = list(csv.DictReader(io.StringIO(download.body.decode())))
    assert (row["outcome"], row["reason"]) == ("notEligible", "No Azure subscriptions.")

    signed = query(link)
    batch_link = query(location)
    customers_path = f"{BASE_URL}/api/follow/batches/{batch_id}/customers"
    for forged in (
        f"{customers_path}?{urlencode(batch_link)}",  # the page's own signature does not open the CSV
        f"{BASE_URL}/api/follow/batches/{batch_id}?{urlencode(signed)}",  # nor the CSV's the page
        f"{customers_path}?{urlencode(signed | {'sig': signed['sig'][:-1] + 'A'})}",
    ):
        refused = app.follow(forged)
        assert refused.status == 401, forged
        assert refused.json()["type"].endswith("invalid-follow-link")
