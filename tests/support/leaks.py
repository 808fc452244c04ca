"""Everything secret the sandbox handed out or received, and a search for it in logs and responses."""

from __future__ import annotations

from collections.abc import Iterable

from sandbox.stack import (
    APP_ID_SECRET,
    APP_SECRET_SECRET,
    CALLBACK_SIGNING_KEY_SECRET,
    REFRESH_TOKEN_SECRET,
    STATUS_LINK_KEY_SECRET,
    Sandbox,
)
from support.harness import Answer

MIN_LENGTH = 12  # shorter values (ids, versions) would match by accident


def known_secrets(sandbox: Sandbox) -> dict[str, str]:
    """secret value -> what it is (the description is safe to print, the value is not)."""
    found: dict[str, str] = {}
    for name in (APP_SECRET_SECRET, REFRESH_TOKEN_SECRET, CALLBACK_SIGNING_KEY_SECRET, STATUS_LINK_KEY_SECRET):
        for version in sandbox.key_vault.versions(name):
            found[version["value"]] = f"Key Vault secret {name}"
    for token in sandbox.entra.issued_refresh_tokens():
        found[token] = "a refresh token issued by Entra"
    for token in sandbox.entra.api.minted():
        found[token] = "an access token for the app's API"
        found[token.rsplit(".", 1)[-1]] = "the signature of an access token for the app's API"
    for client in sandbox.entra.api.clients.values():
        found[client.secret] = "a client secret of a caller of the app's API"
    for key in sandbox.caller_keys:
        found[key] = "a caller key"
        found[key.partition(".")[2]] = "the secret part of a caller key"
    for stand_in in sandbox.stand_ins:
        for request in stand_in.log:
            token = request.bearer_token()
            if token:
                found[token] = f"a bearer token sent to {stand_in.name}"
            for field in ("client_secret", "refresh_token", "code_verifier", "access_token"):
                value = request.form.get(field) if request.body else None
                if value:
                    found[value] = f"{field} sent to {stand_in.name}"
    found.pop("", None)
    # The app id is an identifier, not a secret; it may be logged.
    for version in sandbox.key_vault.versions(APP_ID_SECRET):
        found.pop(version["value"], None)
    return {value: what for value, what in found.items() if len(value) >= MIN_LENGTH}


def find_leaks(secrets: dict[str, str], log_lines: Iterable[str], answers: Iterable[Answer]) -> list[str]:
    """Where a secret appears: each secret is looked for once in all log lines joined (and once in all answers),
    and only one that is there is looked up line by line. The session's sandbox holds thousands of secrets (every
    version and token handed out so far): testing each against each line cost more than the tests themselves.
    Secrets hold no newline, so joining the lines makes no match across two of them."""
    lines, answer_list = list(log_lines), list(answers)
    texts = [answer.body.decode("utf-8", "replace") + repr(dict(answer.headers)) for answer in answer_list]
    leaks: list[str] = []
    for value in _present(secrets, "\n".join(lines)):
        leaks += [f"log line {index} contains {secrets[value]}" for index, line in enumerate(lines) if value in line]
    for value in _present(secrets, "\n".join(texts)):
        leaks += [
            f"{a.method} {a.path} -> {a.status} contains {secrets[value]}"
            for a, text in zip(answer_list, texts, strict=True)
            if value in text
        ]
    return leaks


def _present(secrets: dict[str, str], text: str) -> list[str]:
    return [value for value in secrets if value in text]
