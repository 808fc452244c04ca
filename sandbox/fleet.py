"""A generated fleet of customers for batch work: N customers with a realistic, seeded mix of behaviours.

    fleet = sandbox.add_fleet(300, seed=7)        # or generate_fleet(300, seed=7) and add the customers yourself
    fleet.counts()                                # {"eligible": 180, "notEligible": 60, ...}
    fleet.of_kind(Kind.REFUSED)                   # the customers whose create is refused

Kinds (the batch outcomes they lead to, docs/design.md "Batches"):
- `eligible`: eligibility says eligible; a create gives an upgrade that is Completed `complete_after` s later.
- `notEligible`: eligibility says not eligible with one of Partner Center's reasons (`NOT_ELIGIBLE_REASONS`);
  a create is refused with 403 900120.
- `hasUpgrade`: eligibility names an existing upgrade (`existing_upgrade_id`), created when the customer is added
  and Completed `complete_after` s after that; a create is refused with 409 900109 while it runs.
- `refused`: eligibility says eligible, but a create is refused with 403 900120 because the customer has not
  accepted the Microsoft Customer Agreement (`NO_MCA`; Partner Center publishes no code of its own for that, and
  900120 "Cannot process Azure upgrade" is its code for an upgrade it will not do).
- `lineItemFails`: like `eligible`, but the upgrade ends Completed with its line item Failed.

Outside the mix, `moved_away()` makes a customer that moved to another partner: every call about it is refused
with 403 / 20002 ("no commerce relationship"), a per-customer code Partner Center documents as final.

The same count, seed, mix and `complete_after` always give the same customers (ids, names, kinds, reasons). The
share of each kind is the mix, apportioned exactly (largest remainder), then shuffled with the seed.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sandbox.upgrades import Customer, Step


class Kind(StrEnum):
    ELIGIBLE = "eligible"
    NOT_ELIGIBLE = "notEligible"
    HAS_UPGRADE = "hasUpgrade"
    REFUSED = "refused"
    LINE_ITEM_FAILS = "lineItemFails"


DEFAULT_MIX: Mapping[Kind, float] = {
    Kind.ELIGIBLE: 0.60,
    Kind.NOT_ELIGIBLE: 0.20,
    Kind.HAS_UPGRADE: 0.10,
    Kind.REFUSED: 0.05,
    Kind.LINE_ITEM_FAILS: 0.05,
}

NOT_ELIGIBLE_REASONS = (
    "The customer does not have any legacy Azure subscriptions to upgrade.",
    "The customer has no Azure subscriptions.",
    "Some Azure subscriptions are suspended and cannot be moved to the Azure plan.",
    "Azure subscriptions purchased recently cannot be moved to the Azure plan yet. Try again later.",
    "Azure upgrade is not available for Azure Partner Shared Services.",
)

NO_MCA = (
    403,
    "900120",
    "Cannot process Azure upgrade. The customer has not accepted the Microsoft Customer Agreement.",
)

NO_RELATIONSHIP_CODE = "20002"  # docs/partner-center-api.md §1: per customer, final


def moved_away(seed: int = 0, company_name: str = "Moved Away Ltd") -> Customer:
    """A customer that moved to another partner: every call about it (eligibility, create) is refused with
    403 / 20002 "no commerce relationship", as Partner Center answers for a customer an old list still names."""
    customer_id = _guid(random.Random(seed))
    description = f"The partner ID 4f1c0e7a has no commerce relationship with the customer ID {customer_id}."
    return Customer(
        customer_id=customer_id,
        name="movedAway",
        company_name=company_name,
        refusal=(403, NO_RELATIONSHIP_CODE, description),
        summary="moved to another partner: every call is refused with 403 20002",
    )


_NAMES = (
    "Contoso", "Fabrikam", "Northwind", "Adventure Works", "Tailspin", "Woodgrove", "Litware", "Proseware",
    "Wingtip", "Alpine Ski House", "Coho", "Fourth Coffee", "Lamna", "Margie's", "Trey", "Wide World",
    "Blue Yonder", "Relecloud", "VanArsdel", "Lucerne", "Humongous", "A. Datum", "Southridge", "Bellows",
    "Munson's", "Nod", "Olympia", "First Up", "Graphic Design", "Consolidated",
)  # fmt: skip
_TRADES = (
    "Consulting", "Traders", "Health", "Logistics", "Bakery", "Legal", "Engineering", "Retail", "Media",
    "Software", "Travel", "Energy", "Foods", "Dental", "Architects", "Bäckerei", "Électricité", "Ski & Sports",
)  # fmt: skip
_FORMS = ("Ltd", "GmbH", ", Inc.", "B.V.", "AB", "S.A.", "Oy", "Pty Ltd", "SARL", "K.K.", "LLC", "& Co. KG")


@dataclass(frozen=True)
class Fleet:
    seed: int
    customers: tuple[Customer, ...]
    kinds: Mapping[str, Kind]  # customer id (lower case) -> kind

    def counts(self) -> dict[str, int]:
        """Customers per kind, every kind present, in `Kind` order."""
        return {kind.value: sum(1 for k in self.kinds.values() if k is kind) for kind in Kind}

    def of_kind(self, kind: Kind | str) -> list[Customer]:
        return [c for c in self.customers if self.kinds[c.customer_id.lower()] == kind]

    def kind_of(self, customer_id: str) -> Kind:
        return self.kinds[customer_id.lower()]


Mix = Mapping[Kind, float] | Mapping[str, float]


def generate_fleet(count: int, *, seed: int = 0, mix: Mix | None = None, complete_after: float = 5.0) -> Fleet:
    """`count` customers; `mix` weighs the kinds (missing kinds weigh 0; default `DEFAULT_MIX`)."""
    if count < 0 or complete_after < 0:
        raise ValueError("count and complete_after must not be negative")
    rng = random.Random(seed)
    kinds = _apportion(count, _weights(mix))
    rng.shuffle(kinds)
    names = _company_names(rng, count)
    customers = tuple(_customer(kind, name, rng, complete_after) for kind, name in zip(kinds, names, strict=True))
    by_id = {c.customer_id.lower(): kind for c, kind in zip(customers, kinds, strict=True)}
    if len(by_id) != count:
        raise RuntimeError("customer ids collided; use another seed")
    return Fleet(seed, customers, by_id)


def _weights(mix: Mix | None) -> dict[Kind, float]:
    weights = {Kind(kind): float(share) for kind, share in (mix or DEFAULT_MIX).items()}
    if any(share < 0 for share in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError("mix needs non-negative weights with a positive sum")
    return weights


def _apportion(count: int, weights: dict[Kind, float]) -> list[Kind]:
    """Exactly `count` kinds in proportion to `weights` (largest remainder, ties in `Kind` order)."""
    total = sum(weights.values())
    exact = {kind: count * weights.get(kind, 0.0) / total for kind in Kind}
    shares = {kind: int(value) for kind, value in exact.items()}
    by_remainder = sorted(Kind, key=lambda kind: exact[kind] - shares[kind], reverse=True)
    for kind in by_remainder[: count - sum(shares.values())]:
        shares[kind] += 1
    return [kind for kind in Kind for _ in range(shares[kind])]


def _company_names(rng: random.Random, count: int) -> list[str]:
    """Distinct, realistic company names (apostrophes, commas, accents included)."""
    combinations = len(_NAMES) * len(_TRADES) * len(_FORMS)
    picks = rng.sample(range(combinations), min(count, combinations))
    names = [_name(pick) for pick in picks]
    names += [f"{_name(rng.randrange(combinations))} {n}" for n in range(len(names) + 1, count + 1)]
    return names


def _name(index: int) -> str:
    name, rest = _NAMES[index % len(_NAMES)], index // len(_NAMES)
    trade, form = _TRADES[rest % len(_TRADES)], _FORMS[rest // len(_TRADES)]
    return f"{name} {trade}{form}" if form.startswith(",") else f"{name} {trade} {form}"


def _customer(kind: Kind, company_name: str, rng: random.Random, complete_after: float) -> Customer:
    customer_id = _guid(rng)
    done = [Step(0, "InProgress"), Step(complete_after, "Completed")]
    after = f"{complete_after:g} s"
    common: dict[str, Any] = {"customer_id": customer_id, "name": kind.value, "company_name": company_name}
    if kind is Kind.NOT_ELIGIBLE:
        reason = rng.choice(NOT_ELIGIBLE_REASONS)
        return Customer(**common, eligible=False, reason=reason, summary=f"not eligible: {reason}")
    if kind is Kind.HAS_UPGRADE:
        summary = f"eligibility names an existing upgrade, Completed {after} after the customer was added"
        return Customer(**common, existing_upgrade_id=_guid(rng), progression=done, summary=summary)
    if kind is Kind.REFUSED:
        summary = "eligible, but a create is refused with 403 900120 (no Microsoft Customer Agreement)"
        return Customer(**common, create_error=NO_MCA, progression=done, summary=summary)
    if kind is Kind.LINE_ITEM_FAILS:
        failed = [Step(0, "InProgress"), Step(complete_after, "Completed", line_items=[_failed_item(rng)])]
        return Customer(**common, progression=failed, summary=f"{after} after creation: Completed, line item Failed")
    return Customer(**common, progression=done, summary=f"eligible; the upgrade completes {after} after creation")


def _failed_item(rng: random.Random) -> dict[str, Any]:
    return {
        "sourceProduct": {"id": _guid(rng), "name": "AzureSubscription"},
        "targetProduct": {"id": _guid(rng), "name": "Microsoft Azure plan"},
        "status": "Failed",
        "errorDetails": {
            "code": "SubscriptionMigrationFailed",
            "description": "The subscription could not be moved to the Azure plan.",
        },
    }


def _guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))
