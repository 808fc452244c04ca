"""What the Key Vault stand-in holds: each secret's versions as Key Vault's secret bundles, and deleted secrets.

Kept apart from `sandbox.key_vault` so that the stand-in reads as the protocol (routes, authentication, answers)
and the bundle shapes and the delete-recover-purge life cycle live in one place. Not locked: the stand-in calls
it with its own lock held. Names are case-insensitive, as in Key Vault.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

RECOVERABLE_DAYS = 90

Bundle = dict[str, Any]


class SecretVersions:
    """Live secrets (name -> versions, oldest first) and deleted ones (name -> record, the versions it keeps)."""

    def __init__(self) -> None:
        self.live: dict[str, list[Bundle]] = {}
        self.deleted: dict[str, tuple[Bundle, list[Bundle]]] = {}

    def add(self, vault_url: str, name: str, body: dict[str, Any], stamp: int) -> Bundle:
        """A new current version of `name` from a set-secret body (value, attributes, contentType, tags)."""
        bundle: Bundle = {
            "value": body["value"],
            "id": f"{vault_url}/secrets/{name}/{uuid.uuid4().hex}",
            "attributes": {
                "enabled": True,
                "created": stamp,
                "updated": stamp,
                "recoveryLevel": "Recoverable+Purgeable",
                "recoverableDays": RECOVERABLE_DAYS,
                **attributes(body.get("attributes")),
            },
        }
        for key in ("contentType", "tags"):
            if body.get(key) is not None:
                bundle[key] = body[key]
        self.live.setdefault(name.lower(), []).append(bundle)
        return bundle

    def find(self, name: str, version: str) -> Bundle | None:
        """Version `version` of `name`, or its current version when `version` is empty."""
        versions = self.live.get(name.lower(), [])
        if not version:
            return versions[-1] if versions else None
        return next((v for v in versions if version_of(v) == version.lower()), None)

    def delete(self, vault_url: str, name: str, now: int) -> Bundle | None:
        """The deleted-secret record, or None when there is no such secret; its versions wait for a recover."""
        versions = self.live.pop(name.lower(), None)
        if not versions:
            return None
        record = {
            **properties(versions[-1]),
            "recoveryId": f"{vault_url}/deletedsecrets/{name_of(versions[-1])}",
            "deletedDate": now,
            "scheduledPurgeDate": now + RECOVERABLE_DAYS * 86400,
        }
        self.deleted[name.lower()] = (record, versions)
        return record

    def recover(self, name: str) -> Bundle | None:
        """The recovered secret's current version, or None when `name` is not deleted."""
        deleted = self.deleted.pop(name.lower(), None)
        if deleted is None:
            return None
        self.live[name.lower()] = deleted[1]
        return deleted[1][-1]


def attributes(given: Any) -> dict[str, Any]:
    """The attributes a caller may set: enabled, nbf, exp (None values dropped)."""
    if not isinstance(given, dict):
        return {}
    return {k: v for k, v in given.items() if k in ("enabled", "nbf", "exp") and v is not None}


def properties(bundle: Bundle) -> Bundle:
    """A copy of `bundle` without its value, as lists and updates answer."""
    return {k: copy.deepcopy(v) for k, v in bundle.items() if k != "value"}


def name_of(bundle: Bundle) -> str:
    return str(bundle["id"]).split("/")[-2]


def version_of(bundle: Bundle) -> str:
    return str(bundle["id"]).split("/")[-1]
