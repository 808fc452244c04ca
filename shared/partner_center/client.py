"""Partner Center REST client for product upgrades: eligibility, create, status.

One `requests.Session` per process (pooled keep-alive connections). Every call:
- sends Authorization, Accept, Content-Type, MS-RequestId, MS-CorrelationId, X-Locale and
  MS-PartnerCenter-Application;
- retries 429 (after its Retry-After), 408/5xx, timeouts and connection failures with the SAME
  MS-RequestId, which is what makes retrying the create POST safe: Partner Center de-duplicates on it;
- forces one token refresh on a 401;
- stops when the caller's `Budget` (time and attempts) would be exceeded, so an HTTP answer stays far below the 230 s
  front-end limit. A 429 whose Retry-After does not fit in the budget is passed on at once.
A call is three small steps: build the headers, make one attempt (which turns a response into a result, a
`AttemptAgain` or an error), and the shared retry loop of `outbound.py`.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests

from shared.clock import Clock
from shared.correlation import current_correlation_id, get_logger, is_guid
from shared.errors import (
    PartnerCenterFailed,
    PartnerCenterThrottled,
    PartnerCenterTimeout,
    PartnerCenterUnknownUpgrade,
)
from shared.partner_center.budget import Budget
from shared.partner_center.outbound import AttemptAgain, backoff, json_object, retry_after, with_retries
from shared.partner_center.refusals import fault_of, rejection, unauthorized
from shared.partner_center.sam import SamTokenProvider

log = get_logger(__name__)

# Each path as its own Partner Center documentation spells it (routing there is case-insensitive).
CREATE_PATH = "/v1/productupgrades"
ELIGIBILITY_PATH = "/v1/productUpgrades/eligibility"
CUSTOMERS_PATH = "/v1/customers?size={size}"
STATUS_PATH = "/v1/productUpgrades/{upgrade_id}/status"
APPLICATION_NAME = "PartnerCenterUpgradeFunctions"
LOCALE = "en-US"
CONNECT_TIMEOUT = 5.0
BACKOFF_SECONDS = 0.5
RETRYABLE_STATUS = frozenset({408, 500, 502, 503, 504})
UNKNOWN_UPGRADE_CODES = frozenset({"900106", "900111"})


@dataclass(frozen=True)
class Eligibility:
    is_eligible: bool
    upgrade_id: str | None
    reason: str | None
    request_id: str | None = None
    correlation_id: str | None = None


@dataclass(frozen=True)
class CreatedUpgrade:
    upgrade_id: str
    location: str  # Partner Center's Location header, verbatim (relative: productUpgrades/{id})


@dataclass(frozen=True)
class CustomerPage:
    customers: list[tuple[str, str | None]]  # (customer id lower case, company name)
    next_page: dict[str, Any] | None  # links.next as Partner Center sent it: {"uri", "headers": [...]}, or None


@dataclass(frozen=True)
class StatusReport:
    status: str | None
    line_items: list[dict[str, Any]] = field(default_factory=list)
    error_details: dict[str, Any] | None = None


class PartnerCenterClient:
    def __init__(
        self,
        base_url: str,
        tokens: SamTokenProvider,
        session: requests.Session,
        clock: Clock,
        *,
        read_timeout: float,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._tokens = tokens
        self._session = session
        self._clock = clock
        self._read_timeout = read_timeout

    def check_eligibility(self, customer_id: str, product_family: str, budget: Budget) -> Eligibility:
        body = {"customerId": customer_id, "productFamily": product_family}
        response = self._call("eligibility", ELIGIBILITY_PATH, body, str(uuid.uuid4()), budget)
        if response.status_code != 200:
            raise rejection(response, f"Partner Center refused the eligibility check for customer {customer_id}")
        document = json_object(response)
        upgrade_id = document.get("upgradeId")
        reason = document.get("reason")
        return Eligibility(
            is_eligible=document.get("isEligible") is True,
            upgrade_id=upgrade_id.lower() if isinstance(upgrade_id, str) and is_guid(upgrade_id) else None,
            reason=reason if isinstance(reason, str) and reason else None,
            request_id=response.headers.get("MS-RequestId"),
            correlation_id=response.headers.get("MS-CorrelationId"),
        )

    def create_upgrade(self, customer_id: str, product_family: str, request_id: str, budget: Budget) -> CreatedUpgrade:
        body = {"customerId": customer_id, "productFamily": product_family}
        response = self._call("create", CREATE_PATH, body, request_id, budget)
        if not 200 <= response.status_code < 300:
            raise rejection(response, f"Partner Center refused the upgrade for customer {customer_id}")
        location = response.headers.get("Location", "").strip()
        upgrade_id = location.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
        if not is_guid(upgrade_id):
            raise PartnerCenterFailed(
                f"Partner Center accepted the request (HTTP {response.status_code}) but sent no usable Location "
                "header; retrying with the same Idempotency-Key is safe",
                fault_of(response),
            )
        return CreatedUpgrade(upgrade_id=upgrade_id.lower(), location=location)

    def get_status(self, upgrade_id: str, customer_id: str, product_family: str, budget: Budget) -> StatusReport:
        body = {"customerId": customer_id, "productFamily": product_family}
        path = STATUS_PATH.format(upgrade_id=quote(upgrade_id, safe=""))  # an id never changes the path
        response = self._call("status", path, body, str(uuid.uuid4()), budget)
        if response.status_code != 200:
            fault = fault_of(response)
            if response.status_code == 404 or fault.code in UNKNOWN_UPGRADE_CODES:
                raise PartnerCenterUnknownUpgrade(
                    f"Partner Center does not know upgrade {upgrade_id} for customer {customer_id}", fault
                )
            raise rejection(response, f"Partner Center refused the status check of upgrade {upgrade_id}")
        document = json_object(response)
        status = document.get("status")
        items = document.get("lineItems")
        details = document.get("errorDetails")
        return StatusReport(
            status=status if isinstance(status, str) else None,
            line_items=[i for i in items if isinstance(i, dict)] if isinstance(items, list) else [],
            error_details=details if isinstance(details, dict) else None,
        )

    def list_customers(self, page: dict[str, Any] | None, size: int, budget: Budget) -> CustomerPage:
        """One page of the partner's customers: the first (`page` None) or the `links.next` of the previous one,
        requested at `{base}/v1` + its uri with every header it lists (e.g. MS-ContinuationToken)."""
        path, extra = CUSTOMERS_PATH.format(size=size), {}
        if page is not None:
            path = "/v1" + str(page.get("uri", ""))
            extra = {str(h.get("key")): str(h.get("value")) for h in page.get("headers", []) if isinstance(h, dict)}
        response = self._call("customers", path, None, str(uuid.uuid4()), budget, method="GET", extra=extra)
        if response.status_code != 200:
            raise rejection(response, "Partner Center refused the customer list")
        document = json_object(response)
        items = document.get("items") if isinstance(document.get("items"), list) else []
        customers = [_listed(item) for item in items or [] if isinstance(item, dict)]
        links = document.get("links") if isinstance(document.get("links"), dict) else {}
        following = (links or {}).get("next")
        return CustomerPage([c for c in customers if c is not None], following if isinstance(following, dict) else None)

    def _call(
        self,
        operation: str,
        path: str,
        body: dict[str, Any] | None,
        request_id: str,
        budget: Budget,
        *,
        method: str = "POST",
        extra: dict[str, str] | None = None,
    ) -> requests.Response:
        payload = None if body is None else json.dumps(body)
        call = _Call(operation, self._base_url + path, payload, _headers(request_id) | (extra or {}), method)
        return with_retries(
            lambda attempt: self._attempt(call, attempt, budget),
            attempts=budget.attempts,
            remaining=budget.remaining,
            clock=self._clock,
        )

    def _attempt(self, call: _Call, attempt: int, budget: Budget) -> requests.Response:
        """One attempt: the response to use, or `AttemptAgain` (same MS-RequestId), or the error to answer with."""
        token = self._tokens.access_token()
        response = self._send(call, token, attempt, budget)
        if response.status_code == 401:  # one forced refresh per attempt: the token may have been revoked
            token = self._tokens.access_token(rejected=token)
            response = self._send(call, token, attempt, budget)
        status = response.status_code
        if status == 401:
            raise unauthorized(response, token, call.operation)
        if status == 429:
            wait = retry_after(response.headers) or backoff(attempt, BACKOFF_SECONDS)
            throttled = PartnerCenterThrottled(
                f"Partner Center is throttling the {call.operation} call; retry after {wait:.0f} seconds",
                retry_after=max(1, round(wait)),
                fault=fault_of(response),
            )
            if not budget.wait_when_throttled:
                raise throttled
            raise AttemptAgain(wait, throttled)
        if status in RETRYABLE_STATUS:
            failure = PartnerCenterFailed(
                f"Partner Center failed the {call.operation} call with HTTP {status}", fault_of(response)
            )
            raise AttemptAgain(retry_after(response.headers) or backoff(attempt, BACKOFF_SECONDS), failure)
        return response

    def _send(self, call: _Call, token: str, attempt: int, budget: Budget) -> requests.Response:
        """One HTTP exchange; timeouts and connection failures become an `AttemptAgain`."""
        budget.before_call()
        remaining = budget.remaining()
        if remaining < 0.05:
            raise PartnerCenterTimeout(f"no time left in the budget for Partner Center {call.operation}")
        timeout = (min(CONNECT_TIMEOUT, remaining), min(self._read_timeout, remaining))
        headers = {"Authorization": f"Bearer {token}", **call.headers}
        started = time.monotonic()
        try:
            response = self._session.request(
                call.method, call.url, data=call.payload, headers=headers, timeout=timeout, allow_redirects=False
            )
        except requests.Timeout:
            elapsed = time.monotonic() - started
            log.warning(
                "Partner Center %s timed out after %.1f s (attempt %d, MS-RequestId %s)",
                call.operation, elapsed, attempt, call.request_id,
            )  # fmt: skip
            failure: Exception = PartnerCenterTimeout(
                f"Partner Center did not answer the {call.operation} call in time"
            )
            raise AttemptAgain(backoff(attempt, BACKOFF_SECONDS), failure) from None
        except requests.ConnectionError as error:
            log.warning(
                "Partner Center %s connection failed: %s (attempt %d, MS-RequestId %s)",
                call.operation, type(error).__name__, attempt, call.request_id,
            )  # fmt: skip
            failure = PartnerCenterFailed(f"could not reach Partner Center for the {call.operation} call")
            raise AttemptAgain(backoff(attempt, BACKOFF_SECONDS), failure) from None
        _log_response(call.operation, response, started, attempt)
        return response


@dataclass(frozen=True)
class _Call:
    operation: str
    url: str
    payload: str | None
    headers: dict[str, str]
    method: str = "POST"

    @property
    def request_id(self) -> str:
        return self.headers["MS-RequestId"]


def _headers(request_id: str) -> dict[str, str]:
    """Every header Partner Center documents, but Authorization (added per attempt)."""
    correlation_id = current_correlation_id()
    return {
        "Accept": "application/json",
        "Content-Type": "application/json",
        "MS-RequestId": request_id,
        "MS-CorrelationId": correlation_id if is_guid(correlation_id) else str(uuid.uuid4()),
        "X-Locale": LOCALE,
        "MS-PartnerCenter-Application": APPLICATION_NAME,
    }


def _listed(item: dict[str, Any]) -> tuple[str, str | None] | None:
    customer_id = item.get("id")
    profile = item.get("companyProfile") if isinstance(item.get("companyProfile"), dict) else {}
    name = (profile or {}).get("companyName")
    if not (isinstance(customer_id, str) and is_guid(customer_id)):
        return None
    return customer_id.lower(), name if isinstance(name, str) and name else None


def _log_response(operation: str, response: requests.Response, started: float, attempt: int) -> None:
    h = response.headers
    log.info(
        "Partner Center %s -> %d in %.0f ms "
        "(attempt %d, MS-RequestId %s, MS-CorrelationId %s, MS-CV %s, MS-ServerId %s)",
        operation,
        response.status_code,
        (time.monotonic() - started) * 1000,
        attempt,
        h.get("MS-RequestId"),
        h.get("MS-CorrelationId"),
        h.get("MS-CV"),
        h.get("MS-ServerId"),
    )
