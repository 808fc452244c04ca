"""Who is calling, and may they? The one place every HTTP request is resolved to a caller and checked for its
route's role before any other work (docs/design.md, "Callers, roles and audit").

Two credentials, nothing else: `Authorization: Bearer <Entra access token>` (shared/auth/tokens.py) or a named
caller key in `X-Caller-Key` / query `callerKey` (shared/auth/caller_keys.py). Exactly one must be present; no
other header (`X-MS-CLIENT-PRINCIPAL`, `X-Forwarded-*`, ...) says anything about identity here.
`ROUTES` maps every HTTP function to its role; tests/test_callers.py fails when a function.json route is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import azure.functions as func

from shared.auth.wiring import callers
from shared.errors import Forbidden, Unauthenticated

if TYPE_CHECKING:
    from shared.services import Services

UPGRADES_READ = "Upgrades.Read"
UPGRADES_CREATE = "Upgrades.Create"
BATCHES_REPORT = "Batches.Report"
BATCHES_UPGRADE = "Batches.Upgrade"
OPERATIONS_READ = "Operations.Read"
ROLES = (UPGRADES_READ, UPGRADES_CREATE, BATCHES_REPORT, BATCHES_UPGRADE, OPERATIONS_READ)


@dataclass(frozen=True)
class RouteRule:
    """`roles`: the caller needs one of them to get in (the handler may then ask for a narrower one, as StartBatch
    does by mode); `action`: how the audit trail names a request; `change`: every request is audited, not only
    the refused ones."""

    methods: tuple[str, ...]
    route: str
    roles: tuple[str, ...]
    action: str
    change: bool = False


ROUTES: dict[str, RouteRule] = {
    "CreateUpgrade": RouteRule(("POST",), "upgrades", (UPGRADES_CREATE,), "upgrade.create", change=True),
    "ListUpgrades": RouteRule(("GET",), "upgrades", (UPGRADES_READ,), "upgrade.list"),
    "GetUpgradeStatus": RouteRule(("GET",), "upgrades/{upgradeId}", (UPGRADES_READ,), "upgrade.read"),
    "CheckEligibility": RouteRule(
        ("GET",), "customers/{customerId}/eligibility", (UPGRADES_READ,), "customer.eligibility"
    ),
    "StartBatch": RouteRule(("POST",), "batches", (BATCHES_REPORT, BATCHES_UPGRADE), "batch.start", change=True),
    "GetBatch": RouteRule(("GET",), "batches/{batchId}", (UPGRADES_READ,), "batch.read"),
    "GetBatchCustomers": RouteRule(("GET",), "batches/{batchId}/customers", (UPGRADES_READ,), "batch.customers"),
    "CancelBatch": RouteRule(("POST",), "batches/{batchId}/cancel", (BATCHES_UPGRADE,), "batch.cancel", change=True),
    "Health": RouteRule(("GET",), "health", (OPERATIONS_READ,), "health.read"),
    "GetAudit": RouteRule(("GET",), "audit", (OPERATIONS_READ,), "audit.read"),
}
PUBLIC = frozenset({"Follow"})  # signed, read-only links: the signature is the credential (shared/api/follow_links.py)


@dataclass(frozen=True)
class Caller:
    kind: str  # "token" | "key"
    id: str  # the token's oid, or the key's name
    app_id: str | None  # the token's azp (client app)
    name: str | None
    roles: frozenset[str]

    def reference(self) -> dict[str, Any]:
        """`requestedBy` / `cancelledBy` on resources."""
        return {"kind": self.kind, "id": self.id, "name": self.name}


@dataclass
class RequestContext:
    """What the audit entry of one request needs, gathered while it is answered."""

    function: str
    presented: str = "none"  # the credential kind the request carried: none | token | key | several
    caller: Caller | None = None
    reason: str | None = None  # why a credential was refused (log and audit only, never the answer)
    targets: list[str] = field(default_factory=list)


_context: ContextVar[RequestContext | None] = ContextVar("request_context", default=None)


def action_of(function: str) -> str:
    rule = ROUTES.get(function)
    return rule.action if rule else f"{function.lower()}.read"


def current_context() -> RequestContext | None:
    return _context.get()


@contextmanager
def request_scope(context: RequestContext) -> Iterator[RequestContext]:
    token = _context.set(context)
    try:
        yield context
    finally:
        _context.reset(token)


def guard(req: func.HttpRequest, context: RequestContext, svc: Services) -> None:
    """Resolve the caller and check the route's role; raises Unauthenticated (401) or Forbidden (403)."""
    if context.function in PUBLIC:
        return
    rule = ROUTES[context.function]  # a function missing here is a bug the route table test catches
    note_targets(*(str(value) for value in req.route_params.values()))
    try:
        context.caller = authenticate(req, context, svc)
    except Unauthenticated as refused:
        context.reason = refused.reason
        raise
    if not context.caller.roles & set(rule.roles):
        raise Forbidden(" or ".join(rule.roles))


def authenticate(req: func.HttpRequest, context: RequestContext, svc: Services) -> Caller:
    authorization = req.headers.get("authorization")
    key = req.headers.get("x-caller-key") or req.params.get("callerKey")
    presented = [kind for kind, value in (("token", authorization), ("key", key)) if value is not None]
    context.presented = presented[0] if len(presented) == 1 else ("several" if presented else "none")
    if len(presented) != 1:
        raise Unauthenticated("no credential" if not presented else "more than one credential")
    if authorization is not None:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the Authorization header is not 'Bearer <token>'")
        claims = callers(svc).tokens.validate(token.strip())
        return Caller("token", claims.object_id, claims.app_id, claims.name, claims.roles)
    assert key is not None
    record = callers(svc).keys.check(key)
    return Caller("key", record.name, None, record.name, record.roles)


def require_role(role: str) -> None:
    """For a handler whose role depends on the request (StartBatch by mode): 403 unless the caller has it."""
    context = _context.get()
    if context is None or context.caller is None or role not in context.caller.roles:
        raise Forbidden(role)


def current_caller() -> Caller | None:
    context = _context.get()
    return context.caller if context else None


def requested_by() -> dict[str, Any] | None:
    caller = current_caller()
    return caller.reference() if caller else None


def note_targets(*ids: str) -> None:
    """What the request acts on (customer ids, a batch id), for its audit entry."""
    context = _context.get()
    if context is not None:
        context.targets.extend(i for i in ids if i and i not in context.targets)
