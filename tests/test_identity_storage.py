"""The identity-based form of AzureWebJobsStorage, as Azure deploys it (no keys): real OAuth against Azurite.

Azurite runs over HTTPS (certificate from the sandbox CA) with `--oauth basic`, which refuses a request without a
valid-looking Entra token for storage; the app's table and queue clients get theirs from the managed-identity
stand-in through ManagedIdentityCredential, chosen by `AzureWebJobsStorage__credential=managedidentity`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.identity import ManagedIdentityCredential
from azure.storage.queue import QueueClient, TextBase64DecodePolicy

from localrun.azurite import ACCOUNT, Azurite
from sandbox.stack import Sandbox
from support.harness import AppHarness


class KeyVaultTokens:
    """A credential that answers every request with a (valid) managed-identity token for Key Vault."""

    def __init__(self, credential: ManagedIdentityCredential) -> None:
        self._credential = credential

    def get_token(self, *scopes: str, **options: Any) -> AccessToken:
        return self._credential.get_token("https://vault.azure.net/.default")


@pytest.fixture
def oauth_azurite(sandbox: Sandbox, tmp_path: Path) -> Iterator[Azurite]:
    ca = sandbox.ca
    azurite = Azurite(
        tmp_path, extra_args=("--oauth", "basic", "--cert", str(ca.cert_path), "--key", str(ca.key_path))
    ).start()
    yield azurite
    azurite.stop()


def test_the_app_uses_identity_based_storage_with_managed_identity_tokens(
    app: AppHarness, sandbox: Sandbox, oauth_azurite: Azurite, configure: Callable[..., None], app_env: dict[str, str]
) -> None:
    queue_uri = f"https://127.0.0.1:{oauth_azurite.ports['queue']}/{ACCOUNT}"
    table_uri = f"https://127.0.0.1:{oauth_azurite.ports['table']}/{ACCOUNT}"
    configure(
        AzureWebJobsStorage=None,
        AzureWebJobsStorage__queueServiceUri=queue_uri,
        AzureWebJobsStorage__tableServiceUri=table_uri,
        AzureWebJobsStorage__credential="managedidentity",
        AzureWebJobsStorage__clientId=sandbox.identity.client_id,
    )
    customer = str(uuid.uuid4())

    accepted = app.post({"customerId": customer, "productFamily": "Azure"})
    status = app.get(accepted.json()["upgradeId"])  # without customerId: answered from the record alone

    assert accepted.status == 202
    assert status.status == 202 and status.json()["customerId"] == customer
    assert sandbox.identity.tokens_issued.get("https://storage.azure.com", 0) >= 1
    credential = ManagedIdentityCredential(client_id=sandbox.identity.client_id)
    queue = QueueClient(queue_uri, app_env["UPGRADE_STATUS_QUEUE"], credential=credential,
                        message_decode_policy=TextBase64DecodePolicy())  # fmt: skip
    assert queue.get_queue_properties().approximate_message_count == 1
    wrong_audience = KeyVaultTokens(credential)  # Azurite really checks: a token for another resource is refused
    with pytest.raises(HttpResponseError, match="audience"):
        QueueClient(queue_uri, app_env["UPGRADE_STATUS_QUEUE"], credential=wrong_audience).get_queue_properties()
