"""Azure Key Vault's secrets data plane, for the real `SecretClient(url, DefaultAzureCredential())`.

HTTPS only (the client refuses Bearer tokens over http). Authentication follows Key Vault's challenge
protocol: a request without a valid token gets `401` and
`WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/<tenant>", resource="https://0.0.1:<port>"`.
That resource passes the client's check that the challenge resource is a parent domain of the vault host
(`"127.0.0.1:<port>".endswith(".0.0.1:<port>")`), so app code needs no `verify_challenge_resource=False`.
The client then asks its credential for `https://0.0.1:<port>/.default`; tokens must come from the
`ManagedIdentityStandIn` given as `identity=` with that audience (or Key Vault's own `https://vault.azure.net`).

Versions carry `created`/`updated` from the stand-in's clock. Reading an expired or not-yet-valid secret
works, as in Key Vault; reading a disabled one is `403 Forbidden`. The secrets themselves (versions, deleted
secrets, the bundle shapes) are kept in `sandbox.key_vault_store`.
"""

from __future__ import annotations

import copy
import re
import time
from collections import Counter
from typing import Any

from sandbox.key_vault_store import RECOVERABLE_DAYS, SecretVersions, attributes, name_of, properties, version_of
from sandbox.managed_identity import ManagedIdentityStandIn
from sandbox.server import Clock, Recorded, Response, Route, StandIn
from sandbox.tls import LocalCA

__all__ = ["RECOVERABLE_DAYS", "VAULT_AUDIENCE", "KeyVaultStandIn"]

VAULT_AUDIENCE = "https://vault.azure.net"
_NAME = r"(?P<name>[^/]+)"
_VALID_NAME = re.compile(r"[0-9A-Za-z-]{1,127}")


class KeyVaultStandIn(StandIn):
    name = "key-vault"

    def __init__(
        self,
        *,
        ca: LocalCA,
        identity: ManagedIdentityStandIn,
        tenant_id: str | None = None,
        clock: Clock = time.time,
        port: int = 0,
    ) -> None:
        super().__init__(ca=ca, clock=clock, port=port)
        self.identity = identity
        self.tenant_id = tenant_id or identity.tenant_id
        self._secrets = SecretVersions()
        self._reads: Counter[str] = Counter()
        self._writes: Counter[str] = Counter()

    @property
    def challenge_resource(self) -> str:
        return f"https://0.0.1:{self.port}"

    # --- test helpers

    def seed(self, name: str, value: str, *, created: float | None = None) -> str:
        """Store a new version directly (no request, no counters); returns its version id."""
        with self._lock:
            stamp = int(self.clock() if created is None else created)
            return version_of(self._secrets.add(self.url, name, {"value": value}, stamp))

    def current(self, name: str) -> str | None:
        with self._lock:
            versions = self._secrets.live.get(name.lower())
            return versions[-1]["value"] if versions else None

    def versions(self, name: str) -> list[dict[str, Any]]:
        """Copies of every version's bundle (value included), oldest first."""
        with self._lock:
            return copy.deepcopy(self._secrets.live.get(name.lower(), []))

    def backdate(self, name: str, seconds: float) -> None:
        """Make the current version `seconds` older (its `created` and `updated`)."""
        with self._lock:
            stamps = self._secrets.live[name.lower()][-1]["attributes"]
            stamps["created"] = int(stamps["created"] - seconds)
            stamps["updated"] = int(stamps["updated"] - seconds)

    def delete(self, name: str) -> None:
        """Delete secret `name` as `DELETE /secrets/{name}` would (it waits, recoverable, among deleted secrets)."""
        with self._lock:
            self._secrets.delete(self.url, name, int(self.clock()))

    def reads(self, name: str) -> int:
        """Authorized GETs of secret `name` (any version, found or not) since the last reset."""
        with self._lock:
            return self._reads[name.lower()]

    def writes(self, name: str) -> int:
        """Authorized PUTs of secret `name` since the last reset."""
        with self._lock:
            return self._writes[name.lower()]

    # --- protocol

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/secrets/?", "list_secrets", self._list_secrets),
            Route("GET", f"/secrets/{_NAME}/versions/?", "list_versions", self._list_versions),
            Route("PUT", f"/secrets/{_NAME}/?", "set_secret", self._set_secret),
            Route("GET", f"/secrets/{_NAME}(?:/(?P<version>[^/]*))?", "get_secret", self._get_secret),
            Route("PATCH", f"/secrets/{_NAME}(?:/(?P<version>[^/]*))?", "update_secret", self._update_secret),
            Route("DELETE", f"/secrets/{_NAME}/?", "delete_secret", self._delete_secret),
            Route("GET", "/deletedsecrets/?", "list_deleted_secrets", self._list_deleted),
            Route("GET", f"/deletedsecrets/{_NAME}/?", "get_deleted_secret", self._get_deleted),
            Route("DELETE", f"/deletedsecrets/{_NAME}/?", "purge_deleted_secret", self._purge),
            Route("POST", f"/deletedsecrets/{_NAME}/recover/?", "recover_deleted_secret", self._recover),
        ]

    def authenticate(self, request: Recorded) -> Response | None:
        token = request.bearer_token()
        audiences = (self.challenge_resource, VAULT_AUDIENCE)
        if token and any(self.identity.is_valid(token, audience) for audience in audiences):
            return None
        message = (
            "AKV10022: The access token is invalid or expired."
            if token
            else "AKV10000: Request is missing a Bearer or PoP token."
        )
        challenge = (
            f'Bearer authorization="https://login.microsoftonline.com/{self.tenant_id}", '
            f'resource="{self.challenge_resource}"'
        )
        return Response(401, _error("Unauthorized", message), {"WWW-Authenticate": challenge}, route="challenge")

    def fault_body(self, status: int, retry_after: int | None) -> Any:
        code = {429: "Throttled", 503: "ServiceUnavailable"}.get(status, "InternalServerError")
        return _error(code, f"Injected fault: status {status}.")

    def not_found(self, request: Recorded) -> Response:
        return Response(400, _error("BadParameter", f"The request URI {request.path} is not supported."))

    def on_reset(self) -> None:
        self._reads.clear()
        self._writes.clear()

    def _set_secret(self, request: Recorded, params: dict[str, str]) -> Response:
        name = params["name"]
        body = request.json
        with self._lock:
            self._writes[name.lower()] += 1
            if not _VALID_NAME.fullmatch(name):
                return _bad_name(name)
            if not isinstance(body, dict) or not isinstance(body.get("value"), str):
                return Response(400, _error("BadParameter", "The request body must contain a string 'value'."))
            if name.lower() in self._secrets.deleted:
                return Response(409, _error("Conflict", _deleted_conflict(name)))
            return Response(200, self._secrets.add(self.url, name, body, int(self.clock())))

    def _get_secret(self, request: Recorded, params: dict[str, str]) -> Response:
        name, wanted = params["name"], params.get("version", "")
        with self._lock:
            self._reads[name.lower()] += 1
            version = self._secrets.find(name, wanted)
            if version is None:
                return _not_found(f"{name}/{wanted}" if wanted else name)
            if not version["attributes"].get("enabled", True):
                return _disabled()
            return Response(200, version)

    def _update_secret(self, request: Recorded, params: dict[str, str]) -> Response:
        name, wanted = params["name"], params.get("version", "")
        body = request.json if isinstance(request.json, dict) else {}
        with self._lock:
            version = self._secrets.find(name, wanted)
            if version is None:
                return _not_found(f"{name}/{wanted}" if wanted else name)
            version["attributes"].update(attributes(body.get("attributes")))
            version["attributes"]["updated"] = int(self.clock())
            for key in ("contentType", "tags"):
                if key in body:
                    version[key] = body[key]
            return Response(200, properties(version))

    def _list_secrets(self, request: Recorded, params: dict[str, str]) -> Response:
        with self._lock:
            items = [
                {**properties(versions[-1]), "id": f"{self.url}/secrets/{name_of(versions[-1])}"}
                for versions in self._secrets.live.values()
            ]
        return Response(200, {"value": items, "nextLink": None})

    def _list_versions(self, request: Recorded, params: dict[str, str]) -> Response:
        with self._lock:
            versions = self._secrets.live.get(params["name"].lower(), [])
            return Response(200, {"value": [properties(v) for v in versions], "nextLink": None})

    def _delete_secret(self, request: Recorded, params: dict[str, str]) -> Response:
        with self._lock:
            record = self._secrets.delete(self.url, params["name"], int(self.clock()))
            return Response(200, record) if record is not None else _not_found(params["name"])

    def _list_deleted(self, request: Recorded, params: dict[str, str]) -> Response:
        with self._lock:
            records = [record for record, _ in self._secrets.deleted.values()]
            return Response(200, {"value": records, "nextLink": None})

    def _get_deleted(self, request: Recorded, params: dict[str, str]) -> Response:
        with self._lock:
            deleted = self._secrets.deleted.get(params["name"].lower())
            return Response(200, deleted[0]) if deleted else _not_found(params["name"], deleted=True)

    def _purge(self, request: Recorded, params: dict[str, str]) -> Response:
        with self._lock:
            if self._secrets.deleted.pop(params["name"].lower(), None) is None:
                return _not_found(params["name"], deleted=True)
            return Response(204)

    def _recover(self, request: Recorded, params: dict[str, str]) -> Response:
        with self._lock:
            recovered = self._secrets.recover(params["name"])
            if recovered is None:
                return _not_found(params["name"], deleted=True)
            return Response(200, properties(recovered))


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _not_found(name: str, *, deleted: bool = False) -> Response:
    what = "Deleted Secret" if deleted else "A secret with (name/id)"
    message = (
        f"{what} {name} was not found in this key vault. If you recently deleted this secret you may be able "
        "to recover it using the correct recovery command. For help resolving this issue, please see "
        "https://go.microsoft.com/fwlink/?linkid=2125182"
    )
    return Response(404, _error("SecretNotFound", message))


def _disabled() -> Response:
    body = _error("Forbidden", "Operation get is not allowed on a disabled secret.")
    body["error"]["innererror"] = {"code": "SecretDisabled"}
    return Response(403, body)


def _bad_name(name: str) -> Response:
    message = f"The request URI contains an invalid name: {name}"
    return Response(400, _error("BadParameter", message))


def _deleted_conflict(name: str) -> str:
    return (
        f"Secret {name} is currently in a deleted but recoverable state, and its name cannot be reused; "
        "in this state, the secret can only be recovered or purged."
    )
