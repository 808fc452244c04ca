"""The two scripts the fleet report is compared with, as bare Partner Center clients over HTTP with a token:

- *sequential*: list the customers, then check each customer's eligibility one at a time (what the
  Partner-Center-PowerShell module's cmdlets do in a `foreach`);
- *naive 16 threads*: the same list, then 16 threads each taking the next customer, with no shared hold: a
  thread that gets a 429 waits that call's Retry-After and tries again.

Both give a customer up after `MAX_ATTEMPTS` 429s (a failure). They run in virtual time, as a discrete-event
schedule on the clock the sandbox reads: every worker whose next call is due at the current moment sends it
(real HTTP, concurrently for the threads), each call then takes `latency` seconds of virtual time, and a 429
adds its Retry-After; the clock then moves to the next moment a worker is due.
"""

from __future__ import annotations

import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests

from sandbox.clock import ManualClock
from shared.partner_center.client import APPLICATION_NAME, ELIGIBILITY_PATH

MAX_ATTEMPTS = 5
PAGE_SIZE = 100


@dataclass
class ClientRun:
    seconds: float = 0.0
    calls: int = 0
    throttled: int = 0
    failures: int = 0
    checked: dict[str, int] = field(default_factory=dict)  # customer id -> eligibility answers (200)


@dataclass
class _Worker:
    wake: float = 0.0
    customer: str | None = None
    attempts: int = 0


class BareClient:
    def __init__(self, base_url: str, token: str) -> None:
        self._base = base_url
        self._token = token
        self._session = requests.Session()

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._token}",
            "Accept": "application/json",
            "MS-RequestId": str(uuid.uuid4()),
            "MS-CorrelationId": str(uuid.uuid4()),
            "MS-PartnerCenter-Application": APPLICATION_NAME,
        }

    def page(self, following: dict[str, Any] | None) -> requests.Response:
        url, extra = f"{self._base}/v1/customers?size={PAGE_SIZE}", {}
        if following is not None:
            url = f"{self._base}/v1{following['uri']}"
            extra = {h["key"]: h["value"] for h in following.get("headers", [])}
        return self._session.get(url, headers=self._headers() | extra, timeout=30)

    def eligibility(self, customer_id: str) -> requests.Response:
        body = {"customerId": customer_id, "productFamily": "Azure"}
        headers = self._headers() | {"Content-Type": "application/json"}
        return self._session.post(self._base + ELIGIBILITY_PATH, json=body, headers=headers, timeout=30)


def run_script(client: BareClient, clock: ManualClock, *, threads: int, latency: float) -> ClientRun:
    """List every customer, then check each with `threads` workers; virtual seconds from the first call."""
    run = ClientRun()
    started = clock.now()
    customers = _list(client, clock, latency, run)
    todo = deque(customers)
    workers = [_Worker(wake=clock.now()) for _ in range(threads)]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        while True:
            now = clock.now()
            for worker in workers:
                if worker.customer is None and todo and worker.wake <= now:
                    worker.customer, worker.attempts = todo.popleft(), 0
            due = [w for w in workers if w.customer is not None and w.wake <= now]
            if not due:
                busy = [w.wake for w in workers if w.customer is not None]
                if not busy:
                    break
                clock.advance(min(busy) - now)
                continue
            answers = list(pool.map(lambda w: client.eligibility(str(w.customer)), due))
            for worker, answer in zip(due, answers, strict=True):
                _settle(worker, answer, now + latency, run)
            clock.advance(latency)
    run.seconds = max(w.wake for w in workers) - started
    return run


def _settle(worker: _Worker, answer: requests.Response, done_at: float, run: ClientRun) -> None:
    run.calls += 1
    worker.wake = done_at
    customer = str(worker.customer)
    if answer.status_code == 429:
        run.throttled += 1
        worker.attempts += 1
        worker.wake += float(answer.headers.get("Retry-After", "1"))
        if worker.attempts < MAX_ATTEMPTS:
            return
        run.failures += 1
    elif answer.status_code == 200:
        run.checked[customer] = run.checked.get(customer, 0) + 1
    else:
        run.failures += 1
    worker.customer = None


def _list(client: BareClient, clock: ManualClock, latency: float, run: ClientRun) -> list[str]:
    found: list[str] = []
    following: dict[str, Any] | None = None
    while True:
        answer = client.page(following)
        run.calls += 1
        clock.advance(latency)
        if answer.status_code == 429:
            run.throttled += 1
            clock.advance(float(answer.headers.get("Retry-After", "1")))
            continue
        answer.raise_for_status()
        document = answer.json()
        found += [item["id"] for item in document["items"]]
        following = (document.get("links") or {}).get("next")
        if following is None:
            return found
