"""The URLs and polling hints callers follow: the status route's absolute URL and its Retry-After."""

from __future__ import annotations


def status_uri(base_url: str, upgrade_id: str, customer_id: str) -> str:
    """`{base}/api/upgrades/{id}?customerId={customer}`: the customerId lets the route recover a lost record."""
    return f"{base_url}/api/upgrades/{upgrade_id}?customerId={customer_id}"


def retry_after_seconds(seconds: float) -> int:
    """Retry-After for pollers: the time to the next check, clamped to 5-300 s."""
    return int(min(300, max(5, round(seconds))))
