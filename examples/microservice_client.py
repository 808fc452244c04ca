"""A microservice's client for Partner Center Upgrade Functions, using `requests` (docs/microservice.md).

    export PCU_BASE_URL=https://your-function-app.azurewebsites.net
    export PCU_CALLER_KEY='<name>.<secret>'   # a caller key (make run prints one)
    python examples/microservice_client.py 4f6a2d1e-8c3b-4e5f-9a7d-2b1c0e9f8a76 --idempotency-key crm-42

prints the final status resource as JSON (exit 0 when Completed, 1 otherwise). From code::

    client = UpgradeClient(base_url, caller_key)
    final = client.upgrade(customer_id, idempotency_key=f"crm-{account_id}")
    if final["status"] != "Completed": ...

What it does:
- sends the caller key as `X-Caller-Key` on every call (a service with a managed identity would send an Entra
  token instead: README "Securing callers"; the `Location` polls are follow links and need neither), and an
  `Idempotency-Key` on every submit (a new UUID unless you give one), so a
  retried submit never creates a second upgrade;
- retries a submit with the same key when that is safe: 409 `idempotency-key-in-flight` and 503 after
  `Retry-After`, 502 `partner-center-error` / 504 / connection failures with exponential back-off;
  everything else (400, 404, 409 `upgrade-conflict`, 413, 415, 422, other 5xx) raises `ProblemError` at once;
- follows `Location` while it answers 202, sleeping `Retry-After` seconds (5-300; 20 when absent), until a
  non-202 answer or `max_wait` seconds; transient failures while polling (503, 502 `partner-center-error`,
  504, connection errors) are retried, others raise.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

log = logging.getLogger("microservice_client")

PROBLEM_PREFIX = "urn:partner-center-upgrade:problem:"
DEFAULT_POLL_SECONDS = 20  # what Logic Apps uses when Retry-After is absent
MAX_POLL_SECONDS = 300
RETRYABLE_SUBMIT = frozenset(
    {
        "idempotency-key-in-flight",
        "partner-center-throttled",
        "dependency-unavailable",
        "partner-center-error",
        "partner-center-timeout",
    }
)
RETRYABLE_POLL = frozenset(
    {"partner-center-throttled", "dependency-unavailable", "partner-center-error", "partner-center-timeout"}
)


class ProblemError(Exception):
    """The app answered an error. `slug` is the problem type's last part (docs/problems.md)."""

    def __init__(
        self, status: int, problem: dict[str, Any], correlation_id: str | None, retry_after: int | None = None
    ) -> None:
        self.status = status
        self.problem = problem
        self.correlation_id = correlation_id or problem.get("correlationId")
        self.retry_after = retry_after
        type_ = str(problem.get("type", ""))
        self.slug = type_.removeprefix(PROBLEM_PREFIX) if type_.startswith(PROBLEM_PREFIX) else f"http-{status}"
        super().__init__(
            f"HTTP {status} {self.slug}: {problem.get('detail') or problem.get('title') or 'no detail'} "
            f"(correlationId {self.correlation_id})"
        )


@dataclass(frozen=True)
class Accepted:
    body: dict[str, Any]
    location: str
    retry_after: int
    idempotency_key: str


class UpgradeClient:
    def __init__(
        self,
        base_url: str,
        caller_key: str | None,
        *,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = (5.0, 90.0),  # the app answers a submit within about 60 s
        max_attempts: int = 6,
        max_wait: float = 73 * 3600.0,  # the app gives up tracking after STATUS_MAX_TRACKING_HOURS (72 h)
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        if self.base_url.lower().endswith("/api"):
            raise ValueError(
                f"base_url {base_url!r} ends in /api: give the app's root (https://<app>.azurewebsites.net), "
                "the client adds /api/upgrades itself"
            )
        self.session = session or requests.Session()
        if caller_key:
            self.session.headers["X-Caller-Key"] = caller_key
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self._sleep = sleep
        self._clock = clock

    def upgrade(
        self,
        customer_id: str,
        *,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
        correlation_id: str | None = None,
    ) -> dict[str, Any]:
        """Submit and wait: the final status resource (`status` Completed, Failed or TimedOut)."""
        accepted = self.submit(
            customer_id, idempotency_key=idempotency_key, callback_url=callback_url, correlation_id=correlation_id
        )
        log.info("upgrade %s accepted (existing=%s)", accepted.body["upgradeId"], accepted.body["existing"])
        return self.wait(accepted.location, retry_after=accepted.retry_after)

    def submit(
        self,
        customer_id: str,
        *,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
        correlation_id: str | None = None,
    ) -> Accepted:
        key = idempotency_key or str(uuid.uuid4())
        body: dict[str, Any] = {"customerId": customer_id, "productFamily": "Azure"}
        if callback_url:
            body["callbackUrl"] = callback_url
        headers = {"Idempotency-Key": key, "x-correlation-id": correlation_id or str(uuid.uuid4())}
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = self.session.post(
                    f"{self.base_url}/api/upgrades", json=body, headers=headers, timeout=self.timeout
                )
            except (requests.ConnectionError, requests.Timeout) as error:
                # Safe to repeat: the same Idempotency-Key replays or de-duplicates.
                if attempt == self.max_attempts:
                    raise
                self._pause(self._backoff(attempt), f"submit failed ({type(error).__name__})")
                continue
            if response.status_code == 202:
                retry_after = _retry_after(response)
                return Accepted(response.json(), response.headers["Location"], retry_after or 60, key)
            problem = _problem(response)
            if problem.slug not in RETRYABLE_SUBMIT or attempt == self.max_attempts:
                raise problem
            wait = problem.retry_after if problem.retry_after is not None else self._backoff(attempt)
            self._pause(wait, f"submit answered {problem.slug}")
        raise AssertionError("unreachable")  # pragma: no cover

    def wait(self, location: str, *, retry_after: float = DEFAULT_POLL_SECONDS) -> dict[str, Any]:
        """Follow `location` until it stops answering 202; the final status resource."""
        deadline = self._clock() + self.max_wait
        failures = 0
        self._pause(_clamp(retry_after), "first poll")
        while True:
            try:
                response = self.session.get(location, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as error:
                failures += 1
                self._pause_until(deadline, self._backoff(failures), f"poll failed ({type(error).__name__})")
                continue
            if response.status_code == 200:
                result: dict[str, Any] = response.json()
                return result
            if response.status_code == 202:
                failures = 0
                location = response.headers.get("Location", location)
                retry_after = _retry_after(response)
                wait = DEFAULT_POLL_SECONDS if retry_after is None else retry_after
                self._pause_until(deadline, _clamp(wait), "in progress")
                continue
            problem = _problem(response)
            if problem.slug not in RETRYABLE_POLL:
                raise problem
            failures += 1
            wait = problem.retry_after if problem.retry_after is not None else self._backoff(failures)
            self._pause_until(deadline, wait, problem.slug)

    def _backoff(self, attempt: int) -> float:
        base = min(60.0, 2.0**attempt)
        return base * (0.8 + secrets.randbelow(400) / 1000)  # 0.8-1.2 jitter

    def _pause(self, seconds: float, why: str) -> None:
        log.info("%s; waiting %.0f s", why, seconds)
        self._sleep(seconds)

    def _pause_until(self, deadline: float, seconds: float, why: str) -> None:
        if self._clock() + seconds > deadline:
            raise TimeoutError(f"the upgrade was not final within {self.max_wait:.0f} s (last: {why})")
        self._pause(seconds, why)


def _problem(response: requests.Response) -> ProblemError:
    try:
        document = response.json()
    except ValueError:
        document = {}
    if not isinstance(document, dict):
        document = {}
    return ProblemError(
        response.status_code, document, response.headers.get("x-correlation-id"), _retry_after(response)
    )


def _retry_after(response: requests.Response) -> int | None:
    """Retry-After in seconds (the app sends integers), or None."""
    value = response.headers.get("Retry-After", "").strip()
    return int(value) if value.isdigit() else None


def _clamp(seconds: float) -> float:
    return float(min(MAX_POLL_SECONDS, max(1.0, seconds)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Upgrade a CSP customer to the Azure plan and wait for the result.")
    parser.add_argument("customer_id", help="the customer's Microsoft ID (tenant id)")
    parser.add_argument("--idempotency-key", help="reuse to make a retried run safe (default: a new UUID)")
    parser.add_argument("--callback-url", help="https URL on the deployment's CALLBACK_ALLOWED_HOSTS")
    parser.add_argument("--max-wait", type=float, default=3600.0, help="seconds to follow the upgrade (default 3600)")
    args = parser.parse_args(argv)
    base_url, key = os.environ.get("PCU_BASE_URL"), os.environ.get("PCU_CALLER_KEY")
    if not base_url:
        print("set PCU_BASE_URL and PCU_CALLER_KEY (`make run` prints a local one)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        client = UpgradeClient(base_url, key, max_wait=args.max_wait)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    try:
        final = client.upgrade(args.customer_id, idempotency_key=args.idempotency_key, callback_url=args.callback_url)
    except ProblemError as error:
        print(json.dumps(error.problem, indent=2), file=sys.stderr)
        return 1
    print(json.dumps(final, indent=2))
    return 0 if final.get("status") == "Completed" else 1


if __name__ == "__main__":
    sys.exit(main())
