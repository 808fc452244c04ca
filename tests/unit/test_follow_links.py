"""Follow-link signing (shared/api/follow_links.py): a signed link verifies until it expires, and any change to
its path, customer, expiry or signature makes it invalid."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from shared.api.follow_links import batch_path, is_valid, signature, signed_url, upgrade_path

KEY = b"follow-link-key-for-unit-tests"
UPGRADE_ID = "6A1D2B1E-3C4D-4E5F-8A9B-0C1D2E3F4A5B"
CUSTOMER_ID = "0B7E6F1A-2C3D-4E5F-9A8B-7C6D5E4F3A2B"
NOW = 1_800_000_000
EXPIRES = NOW + 3600


def _link(url: str) -> tuple[str, str, str | None, str | None]:
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    return parts.path, query.get("customerId", ""), query.get("expires"), query.get("sig")


def test_a_signed_upgrade_link_verifies_until_it_expires() -> None:
    url = signed_url(KEY, "https://api.contoso.com", upgrade_path(UPGRADE_ID), CUSTOMER_ID, EXPIRES)
    path, customer, expires, sig = _link(url)

    assert url.startswith(f"https://api.contoso.com/api/follow/upgrades/{UPGRADE_ID.lower()}?")
    assert customer == CUSTOMER_ID.lower()
    assert is_valid(KEY, path, customer, expires, sig, now=NOW)
    assert is_valid(KEY, path, customer, expires, sig, now=EXPIRES - 1)
    assert not is_valid(KEY, path, customer, expires, sig, now=EXPIRES)


def test_a_batch_link_has_no_customer_and_signs_it_as_empty() -> None:
    url = signed_url(KEY, "https://api.contoso.com", batch_path("B-1"), "", EXPIRES)
    path, customer, expires, sig = _link(url)

    assert "customerId" not in url and path == "/api/follow/batches/b-1"
    assert is_valid(KEY, path, customer, expires, sig, now=NOW)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda p, c, e, s: (upgrade_path("7a1d2b1e-3c4d-4e5f-8a9b-0c1d2e3f4a5b"), c, e, s),  # another upgrade
        lambda p, c, e, s: (p.replace("/upgrades/", "/batches/"), c, e, s),  # another resource
        lambda p, c, e, s: (p, "1b7e6f1a-2c3d-4e5f-9a8b-7c6d5e4f3a2b", e, s),  # another customer
        lambda p, c, e, s: (p, c, str(int(e) + 86_400), s),  # a later expiry
        lambda p, c, e, s: (p, c, e, ("A" if s[0] != "A" else "B") + s[1:]),  # another signature
        lambda p, c, e, s: (p, c, e, s + "="),  # padded
        lambda p, c, e, s: (p, c, None, s),
        lambda p, c, e, s: (p, c, e, None),
        lambda p, c, e, s: (p, c, "1e12", s),
    ],
)
def test_any_change_to_a_link_invalidates_it(tamper: object) -> None:
    url = signed_url(KEY, "https://api.contoso.com", upgrade_path(UPGRADE_ID), CUSTOMER_ID, EXPIRES)

    path, customer, expires, sig = tamper(*_link(url))  # type: ignore[operator]

    assert not is_valid(KEY, path, customer, expires, sig, now=NOW)


def test_a_link_signed_with_another_key_is_invalid() -> None:
    url = signed_url(b"the-old-key", "https://api.contoso.com", upgrade_path(UPGRADE_ID), CUSTOMER_ID, EXPIRES)

    assert not is_valid(KEY, *_link(url), now=NOW)


def test_the_signature_is_unpadded_base64url_of_32_bytes_and_ignores_id_case() -> None:
    lower = signature(KEY, upgrade_path(UPGRADE_ID), CUSTOMER_ID.lower(), EXPIRES)

    assert len(lower) == 43 and set(lower) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert signature(KEY, upgrade_path(UPGRADE_ID), CUSTOMER_ID, EXPIRES) == lower
