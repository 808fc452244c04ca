"""Partner Center's customer list, `GET /v1/customers?size={n}`, paged the way Partner Center pages it
(docs/partner-center.md, "Listing customers and paging").

A page is `{"totalCount": <items on this page>, "items": [...], "links": {"self": ..., "next": ...},
"attributes": {"objectType": "Collection"}}`. While customers remain, `links.next` is
`{"uri": "/customers?size=N&seekOperation=Next", "method": "GET", "headers": [{"key": "MS-ContinuationToken",
"value": "<opaque>"}]}`, its `uri` relative to `{base}/v1`. The next page is served only to a request with
`seekOperation=Next` that carries that continuation token (400 800002 otherwise); the last page has no `next`.
A token stays valid (asking for the same page again gives the same customers), so a client that crashed can
resume at the page it was on. Order is stable: the order in which customers were added.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Sequence
from typing import Any

from sandbox.pc_errors import error
from sandbox.server import Recorded, Response
from sandbox.upgrades import Customer

CONTINUATION_HEADER = "MS-ContinuationToken"
DEFAULT_PAGE_SIZE = 200
MAX_PAGE_SIZE = 500


class CustomerPages:
    """Answers the list route over the customers it is given; remembers the continuation tokens it handed out."""

    def __init__(self, *, default_size: int = DEFAULT_PAGE_SIZE, max_size: int = MAX_PAGE_SIZE) -> None:
        self.default_size = default_size
        self.max_size = max_size  # a larger `size` is served as `max_size`
        self._offsets: dict[str, int] = {}  # continuation token -> index of the page's first customer
        self._lock = threading.Lock()

    def answer(self, request: Recorded, customers: Sequence[Customer]) -> Response:
        size = self._size(request.arg("size"))
        if size is None:
            return error(400, "800002", "Invalid request input: size must be a positive whole number.")
        seek = request.arg("seekOperation")
        if seek is None:
            offset = 0
        elif seek.lower() != "next":
            return error(400, "800002", f"Invalid request input: unsupported seekOperation '{seek}'.")
        else:
            found = self._offset(request.headers.get(CONTINUATION_HEADER))
            if found is None:
                description = f"Invalid request input: seekOperation=Next needs the {CONTINUATION_HEADER} header "
                return error(400, "800002", description + "from the previous page's links.next.")
            offset = found
        return Response(200, self._page(customers, offset, size, continued=seek is not None))

    def _size(self, raw: str | None) -> int | None:
        if raw is None:
            return min(self.default_size, self.max_size)
        if not re.fullmatch(r"\d{1,9}", raw.strip()) or int(raw) < 1:
            return None
        return min(int(raw), self.max_size)

    def _offset(self, token: str | None) -> int | None:
        with self._lock:
            return self._offsets.get(token.strip()) if token else None

    def _page(self, customers: Sequence[Customer], offset: int, size: int, *, continued: bool) -> dict[str, Any]:
        items = [customer_resource(c) for c in customers[offset : offset + size]]
        query = f"size={size}&seekOperation=Next" if continued else f"size={size}"
        links: dict[str, Any] = {"self": {"uri": f"/customers?{query}", "method": "GET", "headers": []}}
        if offset + size < len(customers):
            token = secrets.token_urlsafe(32)
            with self._lock:
                self._offsets[token] = offset + size
            links["next"] = {
                "uri": f"/customers?size={size}&seekOperation=Next",
                "method": "GET",
                "headers": [{"key": CONTINUATION_HEADER, "value": token}],
            }
        return {"totalCount": len(items), "items": items, "links": links, "attributes": {"objectType": "Collection"}}


def customer_resource(customer: Customer) -> dict[str, Any]:
    """One customer as Partner Center lists it."""
    name = customer.company_name or f"Customer {customer.customer_id[:8]}"
    domain = customer.domain or f"{re.sub(r'[^a-z0-9]', '', name.lower())[:40] or 'customer'}.onmicrosoft.com"
    return {
        "id": customer.customer_id,
        "companyProfile": {
            "tenantId": customer.customer_id,
            "domain": domain,
            "companyName": name,
            "attributes": {"objectType": "CustomerCompanyProfile"},
        },
        "relationshipToPartner": "reseller",
        "attributes": {"objectType": "Customer"},
    }
