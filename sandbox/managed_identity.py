"""App Service's managed-identity endpoint, as the Functions host exposes it to the app.

Plain http on 127.0.0.1, like the real one. `environment()` gives the two variables App Service sets
(`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`); with them (and no `AZURE_CLIENT_ID/SECRET/TENANT_ID`),
`DefaultAzureCredential()` picks `ManagedIdentityCredential` and sends
`GET /msi/token?api-version=2019-08-01&resource=<resource>[&client_id=<id>]` with `X-IDENTITY-HEADER`.

Tokens are JWT-shaped v1 access tokens (`aud`, `iss=https://sts.windows.net/<tenant>/`, `tid`, `oid`, `appid`,
`iat`, `nbf`, `exp`), which is exactly what Azurite's `--oauth basic` checks for `https://storage.azure.com`.
Other stand-ins (Key Vault) verify them with `is_valid(token, audience)`.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from typing import Any

from sandbox import tokens
from sandbox.server import Clock, Recorded, Response, Route, StandIn

API_VERSION = "2019-08-01"
# Environment variables that make DefaultAzureCredential choose another credential than the managed identity
# (environment, workload identity, Cloud Shell/Arc/Service Fabric endpoints): an app using this stand-in must
# run without them.
FOREIGN_CREDENTIALS = (
    "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_USERNAME", "AZURE_PASSWORD",
    "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_FEDERATED_TOKEN_FILE", "MSI_ENDPOINT", "MSI_SECRET",
    "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT",
)  # fmt: skip


class ManagedIdentityStandIn(StandIn):
    name = "managed-identity"

    def __init__(
        self,
        *,
        tenant_id: str = tokens.DEFAULT_TENANT_ID,
        client_id: str | None = None,
        identity_header: str | None = None,
        user_assigned: Iterable[str] = (),
        token_lifetime: float = 24 * 3600,
        clock: Clock = time.time,
        port: int = 0,
    ) -> None:
        super().__init__(clock=clock, port=port)
        self.tenant_id = tenant_id
        self.client_id = client_id or str(uuid.uuid4())
        self.identity_header = identity_header or secrets.token_urlsafe(24)
        self.token_lifetime = token_lifetime
        # client id -> object (principal) id; the system-assigned identity plus any user-assigned ones
        self.identities: dict[str, str] = {self.client_id: str(uuid.uuid4())}
        self.identities.update({cid: str(uuid.uuid4()) for cid in user_assigned})
        self.tokens_issued: Counter[str] = Counter()
        self._key = secrets.token_bytes(32)

    @property
    def endpoint(self) -> str:
        return f"{self.url}/msi/token"

    def environment(self) -> dict[str, str]:
        return {"IDENTITY_ENDPOINT": self.endpoint, "IDENTITY_HEADER": self.identity_header}

    def routes(self) -> list[Route]:
        return [Route("GET", "/msi/token", "token", self._token)]

    def is_valid(self, token: str, audience: str) -> bool:
        """True if this stand-in issued `token` for `audience` and it is within its lifetime."""
        claims = tokens.verify(token, self._key)
        if claims is None or claims.get("aud") != tokens.audience_of(audience):
            return False
        return bool(claims["nbf"] <= self.clock() < claims["exp"])

    def fault_body(self, status: int, retry_after: int | None) -> Any:
        return {"statusCode": status, "message": f"Injected fault: status {status}."}

    def not_found(self, request: Recorded) -> Response:
        return _error(404, "Not found.")

    def on_reset(self) -> None:
        self.tokens_issued.clear()

    def _token(self, request: Recorded, params: dict[str, str]) -> Response:
        if request.headers.get("X-IDENTITY-HEADER") != self.identity_header:
            return _error(401, "The X-IDENTITY-HEADER header is missing or does not match.")
        if request.arg("api-version") != API_VERSION:
            return _error(400, f"The api-version must be {API_VERSION}.")
        resource = request.arg("resource")
        if not resource:
            return _error(400, "The resource query parameter is required.")
        client_id = request.arg("client_id") or self.client_id
        object_id = self.identities.get(client_id)
        if object_id is None:
            return _error(400, "Unable to load the proper Managed Identity.")

        now = int(self.clock())
        expires_on = int(now + self.token_lifetime)
        claims = tokens.access_token_claims(resource, self.tenant_id, now, expires_on) | {
            "appid": client_id,
            "appidacr": "2",
            "idp": tokens.sts_issuer(self.tenant_id),
            "idtyp": "app",
            "oid": object_id,
            "sub": object_id,
            "tid": self.tenant_id,
            "uti": secrets.token_urlsafe(16),
            "ver": "1.0",
        }
        with self._lock:
            self.tokens_issued[tokens.audience_of(resource)] += 1
        return Response(
            200,
            {
                "access_token": tokens.mint(claims, self._key),
                "expires_on": str(expires_on),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": client_id,
            },
        )


def _error(status: int, message: str) -> Response:
    return Response(status, {"statusCode": status, "message": message})
