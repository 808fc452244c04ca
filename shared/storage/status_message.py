"""The status-check queue message: the contract an operator can also follow by hand.

`{"upgradeId", "customerId", "productFamily", "correlationId"?, "attempt"?, "callbackUrl"?}` asks for one
status check. `attempt` is the record's check count when the message was scheduled; a message older than the
record is a duplicate. A message without `attempt` (hand-made by an operator) is always processed.
`callbackUrl` is the record's, carried so that an upgrade recovered from its message (its record was never
written: the instance died, or storage failed, after Partner Center's 202) still calls back; the URL is
checked against CALLBACK_ALLOWED_HOSTS when the callback is sent, as every callback is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shared.correlation import is_guid
from shared.upgrades.model import PRODUCT_FAMILY, UpgradeRecord


class InvalidMessage(ValueError):
    """The message does not follow the queue contract; it can never succeed."""


@dataclass(frozen=True)
class TrackMessage:
    upgrade_id: str
    customer_id: str
    product_family: str
    correlation_id: str | None = None
    attempt: int | None = None
    callback_url: str | None = None

    @classmethod
    def for_record(cls, record: UpgradeRecord) -> TrackMessage:
        """The next check of `record`: `attempt` is its check count, so older messages read as duplicates."""
        return cls(
            record.upgrade_id,
            record.customer_id,
            record.product_family,
            record.correlation_id,
            record.checks,
            record.callback_url,
        )

    @classmethod
    def parse(cls, text: str) -> TrackMessage:
        try:
            document = json.loads(text)
        except ValueError:
            raise InvalidMessage("the message is not JSON") from None
        if not isinstance(document, dict):
            raise InvalidMessage("the message is not a JSON object")
        upgrade_id, customer_id = document.get("upgradeId"), document.get("customerId")
        product_family = document.get("productFamily")
        if not (isinstance(upgrade_id, str) and is_guid(upgrade_id)):
            raise InvalidMessage("upgradeId must be a GUID")
        if not (isinstance(customer_id, str) and is_guid(customer_id)):
            raise InvalidMessage("customerId must be a GUID")
        if not (isinstance(product_family, str) and product_family.lower() == PRODUCT_FAMILY.lower()):
            raise InvalidMessage(f"productFamily must be {PRODUCT_FAMILY}")
        correlation_id = document.get("correlationId")
        attempt = document.get("attempt")
        callback_url = document.get("callbackUrl")
        if callback_url is not None and not isinstance(callback_url, str):
            raise InvalidMessage("callbackUrl must be a string")
        return cls(
            upgrade_id=upgrade_id.lower(),
            customer_id=customer_id.lower(),
            product_family=PRODUCT_FAMILY,
            correlation_id=correlation_id.lower()
            if isinstance(correlation_id, str) and is_guid(correlation_id)
            else None,
            attempt=attempt if isinstance(attempt, int) and not isinstance(attempt, bool) and attempt >= 0 else None,
            callback_url=callback_url or None,
        )

    def to_json(self) -> str:
        document: dict[str, Any] = {
            "upgradeId": self.upgrade_id,
            "customerId": self.customer_id,
            "productFamily": self.product_family,
        }
        if self.correlation_id:
            document["correlationId"] = self.correlation_id
        if self.attempt is not None:
            document["attempt"] = self.attempt
        if self.callback_url:
            document["callbackUrl"] = self.callback_url
        return json.dumps(document, separators=(",", ":"))
