"""Which `aud` values name the app's API (shared/auth/tokens.py): v2 tokens carry the API's client id."""

from __future__ import annotations

from shared.auth.tokens import accepted_audiences

CLIENT_ID = "6a1d2b1e-3c4d-4e5f-8a9b-0c1d2e3f4a5b"


def test_a_client_id_is_the_audience() -> None:
    assert accepted_audiences(CLIENT_ID) == [CLIENT_ID]


def test_the_default_application_id_uri_also_accepts_its_client_id() -> None:
    assert accepted_audiences(f"api://{CLIENT_ID}") == [f"api://{CLIENT_ID}", CLIENT_ID]


def test_another_application_id_uri_is_only_itself() -> None:
    assert accepted_audiences("https://contoso.com/upgrades") == ["https://contoso.com/upgrades"]
    assert accepted_audiences("api://upgrades") == ["api://upgrades"]
