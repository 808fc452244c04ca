"""Callers of several instances: each submission goes to one instance and, when that fails in a way worth
retrying (connection refused or reset by a killed instance, 409 key in flight, 502/503/504), to the next one
with the same Idempotency-Key, as a client behind a load balancer would."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from bench.instances import Instance

RETRYABLE = {409, 502, 503, 504}
IN_FLIGHT = "urn:partner-center-upgrade:problem:idempotency-key-in-flight"
FINAL = {"Completed", "Failed", "TimedOut"}


@dataclass
class Submission:
    key: str
    customer_id: str
    first_instance: int
    callback_url: str | None
    upgrade_id: str | None = None
    status_uri: str | None = None
    attempts: int = 0
    in_flight_after_kill: int = 0  # 409 key-in-flight answers seen after an instance was killed
    answers: Counter[str] = field(default_factory=Counter)  # "202", "409", "connection", ...

    def body(self) -> dict[str, Any]:
        body = {"customerId": self.customer_id, "productFamily": "Azure"}
        return body | ({"callbackUrl": self.callback_url} if self.callback_url else {})


class Callers:
    def __init__(self, instances: list[Instance], deadline: float, credential: dict[str, str] | None = None) -> None:
        self.instances = instances
        self.deadline = deadline
        self.credential = dict(credential or {})  # sent on every request (a caller key with the roles needed)
        self.in_flight = Counter[int]()  # requests being answered, per instance
        self.responses: list[requests.Response] = []  # every answer, for contract and leak checks
        self._lock = threading.Lock()
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False
            session.headers.update(self.credential)
            self._local.session = session
        return session

    def submit(self, submission: Submission) -> Submission:
        """POST until a 202 (or another final answer) or the deadline; the next instance after each failure."""
        target = submission.first_instance
        while time.monotonic() < self.deadline:
            instance = self.instances[target % len(self.instances)]
            target += 1
            submission.attempts += 1
            answer, wait = self._post(instance, submission)
            submission.answers[answer] += 1
            if answer == "202" or (answer.isdigit() and int(answer) not in RETRYABLE):
                return submission
            time.sleep(wait)
        return submission

    def _post(self, instance: Instance, submission: Submission) -> tuple[str, float]:
        headers = {"Idempotency-Key": submission.key}
        with self._lock:
            self.in_flight[instance.index] += 1
        try:
            response = self._session().post(
                f"{instance.url}/api/upgrades", json=submission.body(), headers=headers, timeout=(2, 90)
            )
        except requests.RequestException:
            return "connection", 0.05
        finally:
            with self._lock:
                self.in_flight[instance.index] -= 1
        self.responses.append(response)
        if response.status_code == 202:
            document = response.json()
            submission.upgrade_id, submission.status_uri = document["upgradeId"], document["statusUri"]
        elif response.status_code == 409 and response.json().get("type") == IN_FLIGHT and self._after_kill():
            submission.in_flight_after_kill += 1
        retry_after = float(response.headers.get("Retry-After", "0.2") or 0.2)
        return str(response.status_code), min(max(retry_after, 0.2), 1.0)

    def _after_kill(self) -> bool:
        return any(i.killed_at is not None for i in self.instances)

    def final_status(self, status_uri: str) -> str | None:
        """The upgrade's status through any surviving instance (None when none answered)."""
        path = urlsplit(status_uri)
        for instance in self.instances:
            if not instance.alive:
                continue
            base = urlsplit(instance.url)
            url = urlunsplit((base.scheme, base.netloc, path.path, path.query, ""))
            try:
                response = self._session().get(url, timeout=(2, 30))
            except requests.RequestException:
                continue
            self.responses.append(response)
            if response.status_code in (200, 202):
                return str(response.json().get("status"))
        return None
