"""`make demo ARGS=--fleet`: a report batch over every customer of the sandbox, followed to its end with a live
progress bar (rich), its counts printed, its CSV saved and the URL of its progress page printed (docs/design.md
"Batches", "Progress page").

It is what a partner's flow does: `POST /api/batches {"mode": "report", "allCustomers": true}`, then `GET` on the
`Location` (a follow link: no key needed) after each `Retry-After` until `200`, then
`GET /api/batches/{id}/customers` with `Accept: text/csv`. The same follow link opened in a browser is the
progress page.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import requests
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from shared.partner_center.outbound import json_object

REQUEST_TIMEOUT = (5.0, 60.0)
MAX_POLL_SECONDS = 3.0  # locally the batch moves in seconds; the app's Retry-After is written for Azure


def run_fleet_report(session: requests.Session, base_url: str, out_dir: Path, *, timeout: float) -> tuple[bool, str]:
    """(ok, summary): the batch ended `Completed` and its CSV was saved."""
    body = {"productFamily": "Azure", "mode": "report", "allCustomers": True}
    headers = {"Idempotency-Key": f"fleet-demo-{uuid.uuid4()}"}
    started = session.post(f"{base_url}/api/batches", json=body, headers=headers, timeout=REQUEST_TIMEOUT)
    if started.status_code != 202:
        return False, f"POST /api/batches answered {started.status_code}: {json_object(started).get('detail')}"
    batch = json_object(started)
    print(f"POST /api/batches -> 202: batch {batch.get('batchId')}; following its Location (a follow link)")
    keyless = requests.Session()  # the follow link needs no function key: prove it by not sending one
    keyless.trust_env = session.trust_env
    final, page_url = _follow(keyless, started, deadline=time.monotonic() + timeout)
    print(f"  progress page (open it in a browser; the link needs no key): {page_url}")
    if final is None:
        return False, f"the batch was still running after {timeout:.0f} s"
    counts = final.get("counts")
    counts = counts if isinstance(counts, dict) else {}
    print("  " + ", ".join(f"{outcome} {count}" for outcome, count in counts.items() if count))
    csv_path = out_dir / f"fleet-report-{final.get('batchId')}.csv"
    customers_uri = str(final.get("customersUri"))
    answer = session.get(customers_uri, headers={"Accept": "text/csv"}, timeout=REQUEST_TIMEOUT)
    if answer.status_code != 200:
        return False, f"GET {customers_uri} (text/csv) answered {answer.status_code}"
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path.write_bytes(answer.content)
    lines = answer.text.splitlines()
    print(f"  CSV: {csv_path} ({len(lines) - 1} customers); first lines:")
    for line in lines[:4]:
        print(f"    {line}")
    return True, f"{final.get('total')} customers reported: {counts}; CSV in {csv_path}"


def _follow(
    session: requests.Session, answer: requests.Response, *, deadline: float
) -> tuple[dict[str, object] | None, str]:
    """GET the Location until the batch answers 200, with a live progress bar. (Its final resource, or None when
    the deadline passes; the last follow link, which is also the batch's progress page.)"""
    page_url = answer.headers.get("Location", "")
    columns = (TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns) as progress:
        task = progress.add_task("listing customers", total=None)
        while answer.status_code == 202 and time.monotonic() < deadline:
            _show(progress, task, json_object(answer))
            page_url = answer.headers["Location"]
            time.sleep(min(MAX_POLL_SECONDS, float(answer.headers.get("Retry-After") or 1)))
            answer = session.get(page_url, timeout=REQUEST_TIMEOUT)
        if answer.status_code == 200:
            _show(progress, task, json_object(answer))
    return (json_object(answer) if answer.status_code == 200 else None), page_url


def _show(progress: Progress, task: TaskID, resource: dict[str, object]) -> None:
    """The bar: customers with a final outcome of `total` (an open-ended bar while the customers are listed)."""
    counts = resource.get("counts")
    counts = counts if isinstance(counts, dict) else {}
    listed = sum(v for v in counts.values() if isinstance(v, int))
    total = resource.get("total")
    done = listed - sum(int(counts.get(o) or 0) for o in ("pending", "upgrading"))
    status = str(resource.get("status"))
    description = status if isinstance(total, int) else f"{status}, listing customers ({listed} so far)"
    progress.update(task, description=description, total=total if isinstance(total, int) else None, completed=done)
