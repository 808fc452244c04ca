"""The campaign fields of `POST /api/batches` (docs/design.md, "Campaigns"): the customer source (exactly one of
`customerIds`, `allCustomers: true`, `fromBatch` + `outcomes`), `excludeCustomerIds` and `notBefore`. Errors name
the field (with the index for list items) and the rule, never echo the value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.api.validation import is_customer_id
from shared.batches.model import Outcome
from shared.errors import FieldError

MAX_CUSTOMERS = 5000
MAX_OUTCOMES = 8
MAX_SCHEDULE_SECONDS = 30 * 24 * 3600
SOURCES = ("customerIds", "allCustomers", "fromBatch")
_RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|\+00:00)")


@dataclass(frozen=True)
class Source:
    customer_ids: tuple[str, ...] | None = None  # None: allCustomers or fromBatch
    from_batch: str | None = None
    outcomes: tuple[Outcome, ...] = ()


def check_source(document: dict[str, Any], errors: list[FieldError]) -> Source:
    given = [name for name in SOURCES if document.get(name) is not None]
    if document.get("outcomes") is not None and "fromBatch" not in given:
        errors.append(FieldError("outcomes", "is only accepted with fromBatch"))
    if len(given) != 1:
        errors.append(FieldError("customerIds", "send exactly one of customerIds, allCustomers: true and fromBatch"))
        return Source(())
    if given == ["allCustomers"]:
        if document["allCustomers"] is not True:
            errors.append(FieldError("allCustomers", "must be true when given (or send customerIds instead)"))
        return Source()
    if given == ["fromBatch"]:
        return _from_batch(document, errors)
    return Source(check_guid_list("customerIds", document["customerIds"], errors, allow_empty=False))


def _from_batch(document: dict[str, Any], errors: list[FieldError]) -> Source:
    batch_id = document["fromBatch"]
    if not is_customer_id(batch_id):
        errors.append(FieldError("fromBatch", "must be the batchId of a finished batch"))
        batch_id = None
    raw = document.get("outcomes")
    names = {o.value for o in Outcome}
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_OUTCOMES:
        errors.append(FieldError("outcomes", f"must be an array of 1 to {MAX_OUTCOMES} row outcomes with fromBatch"))
        return Source(None, batch_id)
    outcomes: list[Outcome] = []
    for index, value in enumerate(raw):
        if value not in names:
            errors.append(FieldError(f"outcomes[{index}]", "must be one of " + ", ".join(sorted(names))))
        elif Outcome(value) in outcomes:
            errors.append(FieldError(f"outcomes[{index}]", "repeats an earlier outcome"))
        else:
            outcomes.append(Outcome(value))
    return Source(None, batch_id.lower() if batch_id else None, tuple(outcomes))


def check_guid_list(name: str, ids: Any, errors: list[FieldError], *, allow_empty: bool) -> tuple[str, ...]:
    """Up to MAX_CUSTOMERS distinct customer GUIDs, lower case."""
    if not isinstance(ids, list) or (not ids and not allow_empty):
        errors.append(FieldError(name, "must be a non-empty array of customer GUIDs"))
        return ()
    if len(ids) > MAX_CUSTOMERS:
        errors.append(FieldError(name, f"has {len(ids)} items; at most {MAX_CUSTOMERS} are accepted"))
        return ()
    seen: dict[str, int] = {}
    for index, value in enumerate(ids):
        if not is_customer_id(value):
            errors.append(FieldError(f"{name}[{index}]", "must be a non-nil GUID"))
        elif value.lower() in seen:
            errors.append(FieldError(f"{name}[{index}]", f"repeats {name}[{seen[value.lower()]}]"))
        else:
            seen[value.lower()] = index
    return tuple(seen)


def check_not_before(value: Any, now: float, errors: list[FieldError]) -> float | None:
    """RFC 3339 UTC, in the future, at most 30 days ahead."""
    if value is None:
        return None
    rule = "must be an RFC 3339 UTC time (e.g. 2026-12-24T22:00:00Z) in the future, at most 30 days ahead"
    if not isinstance(value, str) or not _RFC3339_UTC.fullmatch(value):
        errors.append(FieldError("notBefore", rule))
        return None
    try:
        moment = datetime.fromisoformat(value.upper().replace("Z", "+00:00")).timestamp()
    except ValueError:
        errors.append(FieldError("notBefore", rule))
        return None
    if moment <= now:
        errors.append(FieldError("notBefore", "is in the past; " + rule))
    elif moment - now > MAX_SCHEDULE_SECONDS:
        errors.append(FieldError("notBefore", "is more than 30 days ahead; " + rule))
    else:
        return moment
    return None
