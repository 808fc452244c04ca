"""Partner Center's product-upgrade API: create, eligibility and status, and the customer list.

Routes (matched case-insensitively, like ASP.NET routing): "create" `POST /v1/productupgrades`,
"eligibility" `POST /v1/productUpgrades/eligibility`, "status" `POST /v1/productUpgrades/{id}/status`,
"customers" `GET /v1/customers?size={n}` (paged, see `sandbox.customer_pages`).
Every request needs a Bearer token that the `EntraStandIn` given as `entra=` issued for
`https://api.partnercenter.microsoft.com` (or for the stand-in's own URL, see `audiences`), else 401 800001; an
App+User token (one with `scp`) whose `amr` lacks `mfa` gets 401 900421 (MFA is enforced since 2026-04-01).
`throttle(calls_per_minute=K)` limits each partner tenant (the token's `tid`) to K calls in any 60 s of the
stand-in's clock (429 with `Retry-After`; `throttled` counts them). Every answer carries MS-RequestId and
MS-CorrelationId (the caller's, or new GUIDs), MS-CV and MS-ServerId. Codes and texts follow
docs/partner-center.md (`sandbox.pc_errors`).

Customers, their progressions and upgrades are modelled in `sandbox.upgrades` (re-exported here). Creates are
idempotent by MS-RequestId.
"""

from __future__ import annotations

import base64
import re
import secrets
import time
import uuid
from dataclasses import replace
from typing import Any

from sandbox import tokens
from sandbox.customer_pages import CustomerPages
from sandbox.entra import PARTNER_CENTER_RESOURCE, EntraStandIn
from sandbox.faults import Fault
from sandbox.pc_errors import error as _error
from sandbox.pc_errors import mfa_required, rate_limit_body, rate_limited, unauthorized
from sandbox.server import Clock, Recorded, Response, Route, StandIn
from sandbox.throttle import SlidingWindow
from sandbox.tls import LocalCA
from sandbox.upgrades import DEFAULT_PROGRESSION, Customer, Step, Upgrade

__all__ = ["DEFAULT_PROGRESSION", "Customer", "PartnerCenterStandIn", "Step", "Upgrade"]

_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


class PartnerCenterStandIn(StandIn):
    name = "partner-center"

    def __init__(self, *, ca: LocalCA, entra: EntraStandIn, clock: Clock = time.time, port: int = 0) -> None:
        super().__init__(ca=ca, clock=clock, port=port)
        self.entra = entra
        self.default_customer = Customer(customer_id="")
        self.customers: dict[str, Customer] = {}
        self.upgrades: dict[str, Upgrade] = {}
        self.creates = 0  # upgrades actually created by the create route
        self.throttled = 0  # calls refused with 429 by the throttle (not injected faults)
        self.customer_pages = CustomerPages()  # .default_size, .max_size of the customer list
        self._throttle: SlidingWindow | None = None
        self._seen_requests: dict[tuple[str, str], str] = {}  # (MS-RequestId, body) -> upgrade id

    # --- test helpers

    def add_customer(self, customer: Customer) -> None:
        with self._lock:
            self.customers[customer.customer_id.lower()] = customer
            existing = customer.existing_upgrade_id
            if existing and existing.lower() not in self.upgrades:
                self.seed_upgrade(customer.customer_id, existing)

    def customer(self, customer_id: str) -> Customer:
        with self._lock:
            known = self.customers.get(customer_id.lower())
            return known if known is not None else replace(self.default_customer, customer_id=customer_id)

    def seed_upgrade(self, customer_id: str, upgrade_id: str | None = None, created_at: float | None = None) -> str:
        """Record an upgrade as if created earlier (no request, not counted in `creates`); returns its id."""
        with self._lock:
            upgrade = Upgrade(
                upgrade_id=upgrade_id or str(uuid.uuid4()),
                customer_id=customer_id,
                product_family="Azure",
                created_at=self.clock() if created_at is None else created_at,
                progression=list(self.customer(customer_id).progression),
            )
            self.upgrades[upgrade.upgrade_id.lower()] = upgrade
            return upgrade.upgrade_id

    def throttle(
        self, calls_per_minute: int | None, *, window_seconds: float = 60.0, count_rejected: bool = True
    ) -> None:
        """At most `calls_per_minute` calls per partner tenant in any `window_seconds` (None: no limit, the
        default). Every routed Partner Center call counts once it is authenticated; refused calls count too
        unless `count_rejected=False`. `reset()` empties the window but keeps the limit."""
        with self._lock:
            self._throttle = (
                None
                if calls_per_minute is None
                else SlidingWindow(calls_per_minute, self.clock, window=window_seconds, count_rejected=count_rejected)
            )

    def on_reset(self) -> None:
        self.creates = 0
        self.throttled = 0
        if self._throttle is not None:
            self._throttle.clear()

    # --- protocol

    def routes(self) -> list[Route]:
        return [
            Route("POST", "/v1/productupgrades/?", "create", self._create, ignore_case=True),
            Route("POST", "/v1/productupgrades/eligibility/?", "eligibility", self._eligibility, ignore_case=True),
            Route("POST", "/v1/productupgrades/(?P<id>[^/]+)/status/?", "status", self._status, ignore_case=True),
            Route("GET", "/v1/customers/?", "customers", self._customers, ignore_case=True),
        ]

    @property
    def audiences(self) -> tuple[str, str]:
        """Token audiences accepted: Partner Center's resource, and this stand-in's own URL (what a client gets
        when it builds the scope from its base URL, `{PARTNER_CENTER_BASE_URL}/user_impersonation`)."""
        return (PARTNER_CENTER_RESOURCE, self.url)

    def authenticate(self, request: Recorded) -> Response | None:
        """A valid token, with MFA if it is App+User; then the throttle (routed calls only)."""
        token = request.bearer_token()
        if not token or not any(self.entra.is_valid_access_token(token, audience) for audience in self.audiences):
            return unauthorized()
        claims = tokens.read(token) or {}
        if "scp" in claims and "mfa" not in (claims.get("amr") or []):
            return mfa_required()
        window = self._throttle
        if window is None or request.route == "unknown":
            return None
        retry_after = window.admit(str(claims.get("tid", "")).lower())
        if retry_after is None:
            return None
        with self._lock:
            self.throttled += 1
        return rate_limited(retry_after)

    def response_headers(self, request: Recorded) -> dict[str, str]:
        cv = request.headers.get("MS-CV")
        return {
            "MS-RequestId": request.headers.get("MS-RequestId") or str(uuid.uuid4()),
            "MS-CorrelationId": request.headers.get("MS-CorrelationId") or str(uuid.uuid4()),
            "MS-CV": f"{cv}.1" if cv else base64.b64encode(secrets.token_bytes(12)).decode() + ".0",
            "MS-ServerId": "101112616",
        }

    def fault_response(self, fault: Fault) -> Response:
        if fault.status == 429 and fault.retry_after is None:
            fault = replace(fault, retry_after=1)
        return super().fault_response(fault)

    def fault_body(self, status: int, retry_after: int | None) -> Any:
        if status == 429:
            return rate_limit_body(retry_after)
        if status == 401:
            return unauthorized().body
        if status >= 500:
            return _error(status, "800003", "Unexpected service error.").body
        return _error(status, "800002", "Invalid request input.").body

    def not_found(self, request: Recorded) -> Response:
        return _error(404, "800002", f"The resource {request.path} was not found.")

    def _create(self, request: Recorded, params: dict[str, str]) -> Response:
        parsed = _upgrade_request(request)
        if isinstance(parsed, Response):
            return parsed
        customer_id, family = parsed
        customer = self.customer(customer_id)
        if customer.latency > 0:
            time.sleep(customer.latency)
        request_id = (request.headers.get("MS-RequestId") or "").lower()
        seen_key = (request_id, f"{customer_id.lower()}|{family.lower()}")
        with self._lock:
            upgrade_id = self._seen_requests.get(seen_key) if request_id else None
            if upgrade_id is None:
                refusal = self._refuse_create(customer)
                if refusal is not None:
                    return refusal
                upgrade_id = self.seed_upgrade(customer_id)
                self.creates += 1
                if request_id:
                    self._seen_requests[seen_key] = upgrade_id
        return Response(202, None, {"Location": f"productUpgrades/{upgrade_id}"})

    def _refuse_create(self, customer: Customer) -> Response | None:
        refusal = customer.refusal or customer.create_error
        if refusal is not None:
            return _error(*refusal)
        active = self._active_upgrade(customer.customer_id)
        if active is not None:
            return _error(409, "900109", f"Not allowed because original upgrade {active} is still in progress.")
        if not customer.eligible:
            return _error(403, "900120", f"Cannot process Azure upgrade. {customer.reason or ''}".strip())
        return None

    def _eligibility(self, request: Recorded, params: dict[str, str]) -> Response:
        parsed = _upgrade_request(request)
        if isinstance(parsed, Response):
            return parsed
        customer_id, family = parsed
        customer = self.customer(customer_id)
        if customer.latency > 0:
            time.sleep(customer.latency)
        if customer.refusal is not None:
            return _error(*customer.refusal)
        body: dict[str, Any] = {"customerId": customer_id, "productFamily": family, "isEligible": customer.eligible}
        with self._lock:
            upgrade_id = customer.existing_upgrade_id or self._active_upgrade(customer_id)
        if upgrade_id:
            body["upgradeId"] = upgrade_id
        if not customer.eligible:
            body["reason"] = customer.reason or "The customer is not eligible for the upgrade."
        return Response(200, body)

    def _status(self, request: Recorded, params: dict[str, str]) -> Response:
        parsed = _upgrade_request(request)
        if isinstance(parsed, Response):
            return parsed
        customer_id, _ = parsed
        customer = self.customer(customer_id)
        if customer.latency > 0:
            time.sleep(customer.latency)
        with self._lock:
            upgrade = self.upgrades.get(params["id"].lower())
            if upgrade is None:
                return _error(404, "900106", f"No upgrade request found for upgrade {params['id']}.")
            if upgrade.customer_id.lower() != customer_id.lower():
                message = f"The upgrade {upgrade.upgrade_id} belongs to a different customer."
                return _error(400, "900111", message)
            return Response(200, upgrade.body_at(self.clock()))

    def _customers(self, request: Recorded, params: dict[str, str]) -> Response:
        with self._lock:
            customers = list(self.customers.values())
        return self.customer_pages.answer(request, customers)

    def _active_upgrade(self, customer_id: str) -> str | None:
        now = self.clock()
        for upgrade in self.upgrades.values():
            if upgrade.customer_id.lower() == customer_id.lower() and not upgrade.is_final_at(now):
                return upgrade.upgrade_id
        return None


def _upgrade_request(request: Recorded) -> tuple[str, str] | Response:
    """(customerId, productFamily) of a ProductUpgradeRequest body, or the error answer."""
    body = request.json
    if not isinstance(body, dict) or not isinstance(body.get("customerId"), str):
        return _error(400, "800002", "Invalid request input.")
    family = body.get("productFamily")
    if not isinstance(family, str) or not family:
        return _error(400, "800002", "Invalid request input: productFamily is required.")
    if not _GUID.fullmatch(body["customerId"]):
        return _error(400, "900118", "Invalid customer ID.")
    if family.lower() != "azure":
        return _error(400, "900107", "Azure catalog item not found.")
    return body["customerId"], family
