"""`make demo ARGS=--fleet`: a report batch over every customer of the sandbox, followed to its end, with its
counts printed and its CSV saved (docs/design.md "Batches").

It is what a partner's flow does: `POST /api/batches {"mode": "report", "allCustomers": true}`, then `GET` on the
`Location` (a follow link: no key needed) after each `Retry-After` until `200`, then
`GET /api/batches/{id}/customers` with `Accept: text/csv`.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import requests

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
    final = _follow(keyless, started, deadline=time.monotonic() + timeout)
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


def _follow(session: requests.Session, answer: requests.Response, *, deadline: float) -> dict[str, object] | None:
    """GET the Location until the batch answers 200; its final resource, or None when the deadline passes."""
    while answer.status_code == 202 and time.monotonic() < deadline:
        resource = json_object(answer)
        pending = (resource.get("counts") or {}).get("pending")
        print(f"  {resource.get('status')}: total {resource.get('total')}, pending {pending}")
        time.sleep(min(MAX_POLL_SECONDS, float(answer.headers.get("Retry-After") or 1)))
        answer = session.get(answer.headers["Location"], timeout=REQUEST_TIMEOUT)
    return json_object(answer) if answer.status_code == 200 else None
