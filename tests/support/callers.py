"""Credentials for tests, got the way real callers get them: Entra client-credentials tokens from the sandbox's
Entra stand-in (a real POST to its v2 token endpoint), and caller keys seeded in its Key Vault stand-in."""

from __future__ import annotations

import requests

from sandbox.entra_api import ALL_ROLES, ApiClient
from sandbox.stack import Sandbox


def client_token(sandbox: Sandbox, client: ApiClient, scope: str | None = None) -> str:
    """An access token for `client` over the real protocol (grant_type=client_credentials, `{audience}/.default`)."""
    api = sandbox.entra.api
    response = requests.post(
        f"{sandbox.entra.url}/{sandbox.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client.client_id,
            "client_secret": client.secret,
            "scope": scope or f"{api.identifier_uri}/.default",
        },
        verify=str(sandbox.ca.bundle_path),
        timeout=(5, 30),
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def bearer(sandbox: Sandbox, roles: tuple[str, ...] = ALL_ROLES) -> tuple[ApiClient, dict[str, str]]:
    """A newly registered client with `roles`, and the Authorization header of a token it got."""
    client = sandbox.entra.register_api_client(roles)
    return client, {"Authorization": f"Bearer {client_token(sandbox, client)}"}
