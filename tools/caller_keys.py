"""Named caller keys in Key Vault: create, list, rotate, revoke (docs/design.md, "Callers, roles and audit").

    python -m tools.caller_keys --vault <name or URL> create crm --roles Upgrades.Create Upgrades.Read
    python -m tools.caller_keys --vault <name or URL> list
    python -m tools.caller_keys --vault <name or URL> rotate crm
    python -m tools.caller_keys --vault <name or URL> revoke crm
    (or `make caller-key ARGS="--vault … create crm --roles Upgrades.Create"`)

`create` and `rotate` print the key once (`<name>.<secret>`); Key Vault keeps only a salted hash and the roles
(shared/auth/caller_keys.py). `rotate` writes a new version: the app accepts it and the previous one, so the
sender can switch over; the rotation after that retires the old key. `revoke` deletes the secret (soft delete:
the name can be recovered, or purged by the operator); instances stop accepting the key within a minute (their
cache). `list` shows names, roles and creation times, never a secret. Signs in with DefaultAzureCredential
(`az login`); the identity needs "Key Vault Secrets Officer" on the vault.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from shared.api.callers import ROLES
from shared.auth.caller_keys import NAME, KeyRecord, new_key, record_fields

DEFAULT_PREFIX = "caller-key-"


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="python -m tools.caller_keys", description=__doc__.splitlines()[0])
    cli.add_argument("--vault", required=True, help="Key Vault name or https URL")
    cli.add_argument("--prefix", default=DEFAULT_PREFIX, help="CALLER_KEY_SECRET_PREFIX (default caller-key-)")
    commands = cli.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a key and print it once")
    create.add_argument("name", type=_name)
    create.add_argument("--roles", nargs="+", required=True, choices=ROLES)
    commands.add_parser("list", help="names, roles and creation times")
    rotate = commands.add_parser("rotate", help="a new version; the previous stays valid until the next rotation")
    rotate.add_argument("name", type=_name)
    revoke = commands.add_parser("revoke", help="delete the key's secret")
    revoke.add_argument("name", type=_name)
    return cli


def run(args: argparse.Namespace, client: Any, out: TextIO) -> int:
    """`client`: an azure.keyvault.secrets.SecretClient for the vault."""
    if args.command == "list":
        for properties in client.list_properties_of_secrets():
            if properties.name.startswith(args.prefix):
                fields = record_fields(KeyRecord.from_json(client.get_secret(properties.name).value))
                out.write(f"{fields['name']:<40} {' '.join(fields['roles']):<60} {fields['createdAt']}\n")
        return 0
    secret_name = args.prefix + args.name
    if args.command == "revoke":
        client.begin_delete_secret(secret_name).wait()
        out.write(f"revoked {args.name} (secret {secret_name} deleted; instances stop accepting it within a minute)\n")
        return 0
    roles = set(args.roles) if args.command == "create" else _current_roles(client, secret_name)
    if args.command == "create" and _exists(client, secret_name):
        out.write(f"a key named {args.name} exists: rotate it, or revoke it first\n")
        return 2
    key, record = new_key(args.name, roles)
    client.set_secret(
        secret_name, record.to_json(), content_type="application/json", tags={"roles": " ".join(sorted(roles))}
    )
    out.write(f"{args.command}d {args.name} with roles {', '.join(sorted(roles))}. The key (shown once):\n{key}\n")
    return 0


def _current_roles(client: Any, secret_name: str) -> set[str]:
    return set(KeyRecord.from_json(client.get_secret(secret_name).value).roles)


def _exists(client: Any, secret_name: str) -> bool:
    from azure.core.exceptions import ResourceNotFoundError  # noqa: PLC0415

    try:
        client.get_secret(secret_name)
    except ResourceNotFoundError:
        return False
    return True


def _name(value: str) -> str:
    if not NAME.fullmatch(value):
        raise argparse.ArgumentTypeError("1-40 lower-case letters, digits and hyphens")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    from azure.identity import DefaultAzureCredential  # noqa: PLC0415
    from azure.keyvault.secrets import SecretClient  # noqa: PLC0415

    args = parser().parse_args(argv)
    vault = args.vault if args.vault.startswith("https://") else f"https://{args.vault}.vault.azure.net"
    return run(args, SecretClient(vault, DefaultAzureCredential()), sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
