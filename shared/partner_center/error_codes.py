"""What a Partner Center error code means for the app: the one table of documented codes outside the 9xxxxx
product-upgrade range (docs/partner-center-api.md §1, "General Partner Center codes", from Partner Center's REST
error codes page, learn.microsoft.com/partner-center/developer/error-codes).

- `CUSTOMER_FINAL`: about one customer (or one of its resources); asking again never changes the answer, so a
  batch row is `error` at once and `POST /api/upgrades` answers 422 `partner-center-rejected`.
- `OPERATOR`: about the partner's own set-up (the integration user's roles, the partner's programme); every
  customer gets the same answer until an operator fixes it, so it is a 502 naming it, and batch work retries.

Every 9xxxxx code is the product-upgrade API's answer about the customer or the request (§1) and is final too. A
code in neither table stays what it was: a 403 is transient, a 400 or 404 is final.
"""

from __future__ import annotations

CUSTOMER_FINAL: dict[str, str] = {
    "20002": "the partner has no commerce relationship with the customer",
    "1000": "not found",
    "20003": "subscription not found",
    "2030": "the partner is not enabled to sell in the customer's country",
    "2091": "the offer is no longer available",
}

OPERATOR: dict[str, str] = {
    "2032": "access denied: check the SAM integration user's Partner Center roles",
    "2006": "the partner is not valid for the offer",
}


def is_final_for_customer(code: str | None) -> bool:
    """A code Partner Center documents as final for the customer (or request) it was about."""
    return code is not None and (code in CUSTOMER_FINAL or (len(code) == 6 and code.startswith("9")))


def operator_problem(code: str | None) -> str | None:
    """What the operator must fix, when the code points at the partner's own set-up; else None."""
    return OPERATOR.get(code or "")
