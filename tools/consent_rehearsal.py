"""`make consent-rehearsal`: the consent tool, end to end, against the local sandbox, so an operator sees what it
asks and prints before running it against the real tenant.

It starts the sandbox (the Entra ID, Key Vault, managed-identity and Partner Center stand-ins; no Azurite, no Node),
registers a SAM app and an integration user in the Entra stand-in, runs `python -m tools.consent` exactly as
`make consent` does (with `--no-browser`), and plays the browser: it opens the printed sign-in address (the stand-in
signs the user in with MFA, no page to fill in) and follows the redirect back to the tool. The tool's own output is
shown as it comes; nothing is written outside a temporary directory, which is deleted at the end.

    make consent-rehearsal [ARGS="--rotate-callback-key"]   # ARGS: more options for the tool

Exit code: the tool's (0 when the consent was stored), or 1 when the rehearsal itself could not run.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import requests

from sandbox.stack import REFRESH_TOKEN_SECRET, Sandbox
from tools.consent import NAME_SETTINGS

ROOT = Path(__file__).resolve().parents[1]
SECRET_VARIABLE = "SAM_CLIENT_SECRET"  # noqa: S105 - the name of the variable, not a secret
SIGN_IN_MARKER = "/oauth2/v2.0/authorize?"
TIMEOUT_SECONDS = 120
# What would make DefaultAzureCredential pick something other than the managed-identity stand-in, and the secret
# name settings (the rehearsal uses the default names, whatever this shell has set).
FOREIGN = (
    "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_USERNAME", "AZURE_PASSWORD",
    "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_FEDERATED_TOKEN_FILE", "MSI_ENDPOINT", "MSI_SECRET",
    "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT", *NAME_SETTINGS,
)  # fmt: skip


def main(argv: Sequence[str] | None = None, out: IO[str] = sys.stdout) -> int:
    extra = list(sys.argv[1:] if argv is None else argv)
    try:
        with tempfile.TemporaryDirectory(prefix="consent-rehearsal-") as workdir, Sandbox(Path(workdir)) as sandbox:
            return _rehearse(sandbox, extra, out)
    except (OSError, RuntimeError, requests.RequestException) as error:
        print(f"consent-rehearsal: error: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        return 1


def _rehearse(sandbox: Sandbox, extra: list[str], out: IO[str]) -> int:
    client_id, user = str(uuid.uuid4()), "pc-integration@partner.example"
    client_secret = f"Rehearsal~{secrets.token_urlsafe(30)}"
    sandbox.entra.register_app(client_id, client_secret)
    _say(out, "Consent rehearsal against the local sandbox (stand-ins for Entra ID, Key Vault and Partner Center).")
    _say(out, "In Azure you would run, from the repository root:\n")
    _say(out, '    make consent ARGS="--vault <vault> --tenant <partner tenant> --client-id <SAM app id> \\')
    _say(out, '        --login-hint <integration user> --client-secret-env SAM_CLIENT_SECRET"\n')
    _say(out, "Here the same tool runs against the sandbox, and this rehearsal signs in for you:\n")
    environment = {k: v for k, v in os.environ.items() if k not in FOREIGN}
    environment |= sandbox.environment() | {SECRET_VARIABLE: client_secret}
    args = [
        "--vault", sandbox.key_vault.url, "--tenant", sandbox.tenant_id, "--client-id", client_id,
        "--client-secret-env", SECRET_VARIABLE, "--authority-host", sandbox.entra.url,
        "--resource", sandbox.partner_center.url, "--port", "0", "--login-hint", user, "--no-browser",
        "--timeout", str(TIMEOUT_SECONDS), *extra,
    ]  # fmt: skip
    with subprocess.Popen(  # noqa: S603 - this interpreter and the tool's module, arguments as a list
        [sys.executable, "-m", "tools.consent", *args],
        cwd=ROOT,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    ) as tool:
        assert tool.stdout is not None
        for line in tool.stdout:
            _say(out, "  | " + line.rstrip("\n"))
            if SIGN_IN_MARKER in line:
                _sign_in(sandbox, line.strip(), user, out)
        code = tool.wait(TIMEOUT_SECONDS)
    if code != 0:
        _say(out, f"\nThe consent tool failed (exit code {code}); its error is above.")
        return code
    stored = sandbox.key_vault.versions(REFRESH_TOKEN_SECRET)
    if not stored or stored[-1]["value"] not in sandbox.entra.issued_refresh_tokens():
        _say(out, "\nThe tool ended well but no refresh token issued by Entra reached the vault.")
        return 1
    _say(
        out, "\nRehearsal passed: the tool signed in with MFA and stored the SAM credentials in the Key Vault stand-in."
    )
    _say(out, 'Next: the same command against your tenant (README.md, "Deploy").')
    return 0


def _sign_in(sandbox: Sandbox, url: str, user: str, out: IO[str]) -> None:
    """The browser: Entra's authorize endpoint (the stand-in signs `user` in with MFA) redirects to the tool."""
    entra = requests.get(url, allow_redirects=False, verify=str(sandbox.ca.bundle_path), timeout=30)
    location = entra.headers.get("Location", "")
    if entra.status_code != 302 or not location.startswith("http://localhost:"):
        raise RuntimeError(f"the Entra stand-in answered {entra.status_code} instead of redirecting to the tool")
    _say(out, f"  (rehearsal: signed in as {user} with MFA; the browser returns to the tool)")
    requests.get(location, allow_redirects=False, timeout=30)


def _say(out: IO[str], text: str) -> None:
    print(text, file=out, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
