"""The relay most samples show, for comparison: everything fetched and connected anew on every request.

Per request: a new DefaultAzureCredential and SecretClient, the three SAM secrets read from Key Vault, a
refresh-token exchange at Entra ID, and a create POST to Partner Center on a new connection (no session),
with no retry, no eligibility check, no idempotency and no tracking.
"""

from __future__ import annotations

import json
import uuid

import requests
from azure.identity import DefaultAzureCredential
from azure.keyvault.secrets import SecretClient


def relay_create(env: dict[str, str], customer_id: str) -> int:
    vault = SecretClient(env["KEY_VAULT_URL"], DefaultAzureCredential())
    app_id = vault.get_secret("partner-center-app-id").value
    app_secret = vault.get_secret("partner-center-app-secret").value
    refresh_token = vault.get_secret("partner-center-refresh-token").value
    token = requests.post(
        f"{env['AZURE_AUTHORITY_HOST']}/{env['PARTNER_TENANT_ID']}/oauth2/v2.0/token",
        data={
            "grant_type": "refresh_token",
            "client_id": app_id,
            "client_secret": app_secret,
            "refresh_token": refresh_token,
            "scope": f"{env['PARTNER_CENTER_BASE_URL']}/user_impersonation offline_access",
        },
        timeout=30,
    ).json()["access_token"]
    response = requests.post(
        f"{env['PARTNER_CENTER_BASE_URL']}/v1/productupgrades",
        data=json.dumps({"customerId": customer_id, "productFamily": "Azure"}),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "MS-RequestId": str(uuid.uuid4()),
            "MS-CorrelationId": str(uuid.uuid4()),
        },
        timeout=30,
    )
    return response.status_code
