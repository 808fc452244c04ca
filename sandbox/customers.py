"""Named demo customers with fixed tenant GUIDs, one per behaviour the app must handle.

`Sandbox.add_demo_customers()` registers them with the Partner Center stand-in; `python -m sandbox` prints
them. Times count from the upgrade's creation (for "already-upgrading": from when the customer was added).
"""

from __future__ import annotations

from sandbox.partner_center import Customer, Step

ELIGIBLE = Customer(
    customer_id="dec0de00-0000-4000-8000-000000000001",
    name="eligible",
    company_name="Contoso Ltd",
    summary="eligible; the upgrade completes ~20 s after creation",
    progression=[Step(0, "InProgress"), Step(20, "Completed")],
)

NOT_ELIGIBLE = Customer(
    customer_id="dec0de00-0000-4000-8000-000000000002",
    name="not-eligible",
    company_name="Fabrikam, Inc.",
    summary="not eligible (eligibility says why; a create is refused with 403 900120)",
    eligible=False,
    reason="The customer does not have any legacy Azure subscriptions to upgrade.",
)

ALREADY_UPGRADING = Customer(
    customer_id="dec0de00-0000-4000-8000-000000000003",
    name="already-upgrading",
    company_name="Northwind Traders",
    summary="eligibility returns an existing upgradeId: InProgress, Completed ~45 s after start-up",
    existing_upgrade_id="dec0de00-0000-4000-8000-0000000000a3",
    progression=[Step(0, "InProgress"), Step(45, "Completed")],
)

SLOW = Customer(
    customer_id="dec0de00-0000-4000-8000-000000000004",
    name="slow",
    company_name="Tailspin Toys",
    summary="every call takes 2 s; the upgrade completes ~60 s after creation",
    latency=2.0,
    progression=[Step(0, "InProgress"), Step(60, "Completed")],
)

FAILING = Customer(
    customer_id="dec0de00-0000-4000-8000-000000000005",
    name="failing",
    company_name="Woodgrove Bank",
    summary="after ~15 s the upgrade says Completed but its line item Failed",
    progression=[
        Step(0, "InProgress"),
        Step(
            15,
            "Completed",
            line_items=[
                {
                    "sourceProduct": {"id": "dec0de00-0000-4000-8000-0000000000b5", "name": "AzureSubscription"},
                    "targetProduct": {"id": "dec0de00-0000-4000-8000-0000000000c5", "name": "Microsoft Azure plan"},
                    "status": "Failed",
                    "errorDetails": {
                        "code": "SubscriptionMigrationFailed",
                        "description": "The subscription could not be moved to the Azure plan.",
                    },
                }
            ],
        ),
    ],
)

DEMO_CUSTOMERS: tuple[Customer, ...] = (ELIGIBLE, NOT_ELIGIBLE, ALREADY_UPGRADING, SLOW, FAILING)


def demo_customer(name: str) -> Customer:
    """The demo customer called `name` (e.g. "slow")."""
    for customer in DEMO_CUSTOMERS:
        if customer.name == name:
            return customer
    raise KeyError(name)
