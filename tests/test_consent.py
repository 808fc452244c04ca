"""tools.consent end to end against the sandbox: Entra, Key Vault and Partner Center stand-ins, no mocks.

The tool runs as the operator runs it, `python -m tools.consent ... --no-browser` in a subprocess with the sandbox
environment (Key Vault access through DefaultAzureCredential and the managed-identity stand-in). The test plays
the browser: it GETs the printed authorize URL (the Entra stand-in signs the user in with MFA, no UI) and follows
the 302 to the tool's loopback server. Then it checks what reached the vault, that nothing secret was printed,
and that the app works with what the tool stored.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from sandbox import tokens
from sandbox.stack import (
    APP_ID_SECRET,
    APP_SECRET_SECRET,
    CALLBACK_SIGNING_KEY_SECRET,
    REFRESH_TOKEN_SECRET,
    STATUS_LINK_KEY_SECRET,
    Sandbox,
)
from support.harness import AppHarness
from support.leaks import known_secrets
from tools import consent

ROOT = Path(__file__).resolve().parents[1]
SECRET_VARIABLE = "SAM_CLIENT_SECRET_FOR_TEST"
# What would make DefaultAzureCredential pick something other than the managed-identity stand-in, and the app's
# own settings (the tool reads the secret-name settings; each test sets the ones it wants).
FOREIGN = (
    "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_USERNAME", "AZURE_PASSWORD",
    "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_FEDERATED_TOKEN_FILE", "MSI_ENDPOINT", "MSI_SECRET",
    "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT", *consent.NAME_SETTINGS,
)  # fmt: skip
SAM_NAMES = (APP_ID_SECRET, APP_SECRET_SECRET, REFRESH_TOKEN_SECRET)


@dataclass(frozen=True)
class SamApp:
    client_id: str
    client_secret: str = field(repr=False)
    user: str


@pytest.fixture
def sam_app(sandbox: Sandbox) -> SamApp:
    """A SAM app registration in the partner tenant, and the integration user who will consent."""
    app = SamApp(
        str(uuid.uuid4()), f"Sam~{uuid.uuid4().hex}{uuid.uuid4().hex}", f"pc-{uuid.uuid4().hex[:8]}@partner.example"
    )
    sandbox.entra.register_app(app.client_id, app.client_secret)
    return app


class ToolRun:
    """`python -m tools.consent` in a subprocess; its output is read as it comes."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tools.consent", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._url: str | None = None
        self._url_seen = threading.Event()
        assert self.process.stdout is not None and self.process.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, self.err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: IO[str], into: list[str]) -> None:
        for line in stream:
            into.append(line)
            if "/oauth2/v2.0/authorize?" in line and self._url is None:
                self._url = line.strip()
                self._url_seen.set()
        if into is self.out:
            self._url_seen.set()  # the tool ended without printing one

    def authorize_url(self, timeout: float = 30) -> str | None:
        """The sign-in URL the tool printed, or None when it ended without one."""
        assert self._url_seen.wait(timeout), "the tool printed no sign-in URL"
        return self._url

    def finish(self, timeout: float = 60) -> int:
        code = self.process.wait(timeout)
        for reader in self._readers:
            reader.join(timeout=5)
        return code

    @property
    def stdout(self) -> str:
        return "".join(self.out)

    @property
    def stderr(self) -> str:
        return "".join(self.err)


@pytest.fixture
def run_tool(sandbox: Sandbox) -> Iterator[Callable[..., ToolRun]]:
    """Start the tool for `app` with the sandbox environment (plus `env`); `extra` are more command-line words."""
    started: list[ToolRun] = []

    def start(app: SamApp, *extra: str, port: int = 0, env: dict[str, str] | None = None) -> ToolRun:
        environment = {k: v for k, v in os.environ.items() if k not in FOREIGN}
        environment |= sandbox.environment() | {SECRET_VARIABLE: app.client_secret} | (env or {})
        args = [
            "--vault", sandbox.key_vault.url, "--tenant", sandbox.tenant_id, "--client-id", app.client_id,
            "--client-secret-env", SECRET_VARIABLE, "--authority-host", sandbox.entra.url,
            "--resource", sandbox.partner_center.url, "--port", str(port), "--login-hint", app.user, "--no-browser",
            *extra,
        ]  # fmt: skip
        run = ToolRun(args, environment)
        started.append(run)
        return run

    yield start
    for run in started:
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait(10)


def sign_in(sandbox: Sandbox, url: str) -> requests.Response:
    """The browser: Entra's authorize endpoint (no UI: MFA sign-in assumed) answers 302 to the loopback redirect
    URI, and the browser follows it to the tool."""
    entra = requests.get(url, allow_redirects=False, verify=str(sandbox.ca.bundle_path), timeout=10)
    assert entra.status_code == 302, entra.text
    location = entra.headers["Location"]
    assert location.startswith("http://localhost:"), location
    return requests.get(location, allow_redirects=False, timeout=10)


def consent_once(sandbox: Sandbox, run_tool: Callable[..., ToolRun], app: SamApp, *extra: str, **kw: object) -> ToolRun:
    run = run_tool(app, *extra, **kw)
    url = run.authorize_url()
    assert url, run.stderr
    page = sign_in(sandbox, url)
    assert page.status_code == 200 and "Sign-in complete" in page.text
    assert run.finish() == 0, run.stderr
    return run


def assert_nothing_secret_printed(sandbox: Sandbox, app: SamApp, *runs: ToolRun, names: tuple[str, ...] = ()) -> None:
    secrets = known_secrets(sandbox) | {app.client_secret: "the client secret"}
    for request in sandbox.entra.requests_to("token"):
        for name in ("code", "code_verifier"):
            if request.form.get(name):
                secrets[request.form[name]] = f"the {name} of the consent"
    for name in names:
        for version in sandbox.key_vault.versions(name):
            secrets[version["value"]] = f"Key Vault secret {name}"
    secrets.pop(app.client_id, None)
    for run in runs:
        printed = run.stdout + run.stderr
        leaked = [what for value, what in secrets.items() if value in printed]
        assert not leaked, f"printed: {leaked}"
        assert "Traceback" not in printed


def one_error_line(run: ToolRun) -> str:
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("consent: error: ")
    return lines[0]


def reported(run: ToolRun, name: str, action: str) -> bool:
    """The summary has a line for secret `name` with `action` (written, created, kept, rotated)."""
    return re.search(rf"^  {re.escape(name)} +{action} +version \w+", run.stdout, re.MULTILINE) is not None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- the consent, and the app working with it ------------------------------------------------------------


def test_consent_stores_the_sam_credentials_and_the_app_works_with_them(
    app: AppHarness, sandbox: Sandbox, sam_app: SamApp, run_tool: Callable[..., ToolRun]
) -> None:
    keys = (CALLBACK_SIGNING_KEY_SECRET, STATUS_LINK_KEY_SECRET)
    before = {name: len(sandbox.key_vault.versions(name)) for name in (*SAM_NAMES, *keys)}

    run = consent_once(sandbox, run_tool, sam_app)

    assert_signed_in_with_pkce_and_mfa(sandbox, sam_app)
    after = assert_sam_secrets_written_once(sandbox, sam_app, before)
    assert_summary_names_versions_only(sandbox, sam_app, run, after)
    assert_app_works_with_the_consent(app, sandbox, sam_app, after[REFRESH_TOKEN_SECRET][-1]["value"])


def assert_signed_in_with_pkce_and_mfa(sandbox: Sandbox, app: SamApp) -> None:
    """The sign-in Entra saw: PKCE S256, the Partner Center permission with offline_access, a fresh login with MFA;
    then the code redeemed at the same redirect URI."""
    entra = sandbox.entra
    [authorize] = entra.requests_to("authorize")
    assert authorize.arg("amr_values") == "mfa" and authorize.arg("prompt") == "login"
    assert authorize.arg("login_hint") == app.user and authorize.arg("code_challenge_method") == "S256"
    assert {f"{sandbox.partner_center.url}/user_impersonation", "offline_access"} <= set(
        (authorize.arg("scope") or "").split()
    )
    redirect_uri = authorize.arg("redirect_uri") or ""
    assert redirect_uri.startswith("http://localhost:") and urlsplit(redirect_uri).port
    [redemption] = entra.requests_to("token")
    assert redemption.status == 200 and redemption.form["grant_type"] == "authorization_code"
    assert redemption.form["redirect_uri"] == redirect_uri and redemption.form["code_verifier"]


def assert_sam_secrets_written_once(
    sandbox: Sandbox, app: SamApp, before: dict[str, int]
) -> dict[str, list[dict[str, Any]]]:
    """What reached the vault: one new version of each SAM secret; the existing callback and link keys kept.
    Returns every version of each secret in `before`."""
    after = {name: sandbox.key_vault.versions(name) for name in before}
    assert {name: len(versions) - before[name] for name, versions in after.items()} == {
        APP_ID_SECRET: 1,
        APP_SECRET_SECRET: 1,
        REFRESH_TOKEN_SECRET: 1,
        CALLBACK_SIGNING_KEY_SECRET: 0,
        STATUS_LINK_KEY_SECRET: 0,
    }
    app_id, app_secret, refresh_token = (after[name][-1] for name in SAM_NAMES)
    assert app_id["value"] == app.client_id and app_secret["value"] == app.client_secret
    assert refresh_token["value"] in sandbox.entra.issued_refresh_tokens()
    for stored in (app_id, app_secret, refresh_token):
        assert stored["contentType"] == "text/plain"
        assert stored["tags"]["writtenBy"] == "tools.consent" and stored["tags"]["consentedBy"] == app.user
    expires_in_days = (refresh_token["attributes"]["exp"] - time.time()) / 86400
    assert 89.9 < expires_in_days <= 90
    assert "exp" not in app_id["attributes"] and "exp" not in app_secret["attributes"]
    return after


def assert_summary_names_versions_only(
    sandbox: Sandbox, app: SamApp, run: ToolRun, after: dict[str, list[dict[str, Any]]]
) -> None:
    """The summary names secrets and versions, never a value, and ends with the next step (the smoke test)."""
    version_of = {name: after[name][-1]["id"].rsplit("/", 1)[-1] for name in after}
    for name, version in version_of.items():
        assert any(name in line and version in line for line in run.out), run.stdout
    assert reported(run, CALLBACK_SIGNING_KEY_SECRET, "kept") and reported(run, REFRESH_TOKEN_SECRET, "written")
    assert reported(run, STATUS_LINK_KEY_SECRET, "kept")
    assert "x-functions-key" in run.stdout  # the next step: the smoke test
    assert_nothing_secret_printed(sandbox, app, run)


def assert_app_works_with_the_consent(harness: AppHarness, sandbox: Sandbox, app: SamApp, refresh_token: str) -> None:
    """The app, with its settings pointing at that vault, works with what the tool stored."""
    answer = harness.post({"customerId": str(uuid.uuid4()), "productFamily": "Azure"})

    assert answer.status == 202, answer.body
    [exchange] = [r for r in sandbox.entra.requests_to("token") if r.form.get("grant_type") == "refresh_token"]
    assert exchange.status == 200
    assert (exchange.form["client_id"], exchange.form["client_secret"], exchange.form["refresh_token"]) == (
        app.client_id,
        app.client_secret,
        refresh_token,
    )
    create = sandbox.partner_center.requests_to("create")[-1]
    bearer = create.bearer_token() or ""
    assert create.status == 202 and sandbox.entra.is_valid_access_token(bearer, sandbox.partner_center.url)
    claims = tokens.read(bearer) or {}
    assert (claims["appid"], claims["upn"]) == (app.client_id, app.user)  # minted from the consent


def test_rerunning_writes_new_versions_and_the_callback_and_link_keys_are_created_once(
    sandbox: Sandbox, sam_app: SamApp, run_tool: Callable[..., ToolRun]
) -> None:
    """Secret names come from the app's settings; the callback key is never overwritten unless asked to, the
    follow-link key never (replacing it would break every link handed out)."""
    unique = uuid.uuid4().hex[:10]
    names = dict(
        zip(
            consent.NAME_SETTINGS,
            (f"app-id-{unique}", f"app-secret-{unique}", f"rt-{unique}", f"cb-{unique}", f"link-{unique}"),
            strict=True,
        )
    )
    app_id_name, app_secret_name, rt_name, key_name, link_name = names.values()
    port = free_port()  # the same port every run: a re-run must be able to listen again at once

    first = consent_once(sandbox, run_tool, sam_app, port=port, env=names)
    key = sandbox.key_vault.versions(key_name)
    link_key = sandbox.key_vault.versions(link_name)
    second = consent_once(sandbox, run_tool, sam_app, port=port, env=names)
    kept = sandbox.key_vault.versions(key_name)
    third = consent_once(sandbox, run_tool, sam_app, "--rotate-callback-key", port=port, env=names)
    rotated = sandbox.key_vault.versions(key_name)

    assert len(key) == 1 and len(bytes.fromhex(key[0]["value"])) == 32
    assert key[0]["tags"] == {"writtenBy": "tools.consent"}
    assert kept == key
    assert len(rotated) == 2 and rotated[-1]["value"] != key[0]["value"]
    assert reported(first, key_name, "created") and reported(second, key_name, "kept")
    assert reported(third, key_name, "rotated")
    assert len(link_key) == 1 and link_key[0]["tags"] == {"writtenBy": "tools.consent"}
    value = link_key[0]["value"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", value) and len(base64.urlsafe_b64decode(value + "=")) == 32
    assert sandbox.key_vault.versions(link_name) == link_key  # kept by the second and third runs
    assert reported(first, link_name, "created") and reported(second, link_name, "kept")
    assert reported(third, link_name, "kept")
    tokens_stored = [v["value"] for v in sandbox.key_vault.versions(rt_name)]
    assert len(tokens_stored) == 3 and len(set(tokens_stored)) == 3
    assert set(tokens_stored) <= set(sandbox.entra.issued_refresh_tokens())
    assert [len(sandbox.key_vault.versions(n)) for n in (app_id_name, app_secret_name)] == [3, 3]
    for name in (REFRESH_TOKEN_SECRET, APP_SECRET_SECRET):
        assert sandbox.key_vault.writes(name) == 0  # the default names were left alone
    printed_names = (key_name, rt_name, app_secret_name, link_name)
    assert_nothing_secret_printed(sandbox, sam_app, first, second, third, names=printed_names)


# --- refusals: one line on stderr, exit code 1, nothing written ------------------------------------------------


def assert_nothing_written(sandbox: Sandbox) -> None:
    for name in (*SAM_NAMES, CALLBACK_SIGNING_KEY_SECRET, STATUS_LINK_KEY_SECRET):
        assert sandbox.key_vault.writes(name) == 0, name


def test_consent_denied_exits_1_with_a_clear_message(
    sandbox: Sandbox, sam_app: SamApp, run_tool: Callable[..., ToolRun], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox.entra, "consent_denied", True)
    run = run_tool(sam_app)

    page = sign_in(sandbox, run.authorize_url() or "")

    assert run.finish() == 1
    assert page.status_code == 200 and "access_denied" in page.text
    line = one_error_line(run)
    assert "AADSTS65004" in line and "declined consent" in line and "run the tool again" in line.lower()
    assert sandbox.entra.requests_to("token") == []
    assert_nothing_written(sandbox)
    assert_nothing_secret_printed(sandbox, sam_app, run)


def test_wrong_client_secret_exits_1_with_aadsts7000215_explained(
    sandbox: Sandbox, sam_app: SamApp, run_tool: Callable[..., ToolRun]
) -> None:
    wrong = SamApp(sam_app.client_id, "Wrong~" + uuid.uuid4().hex * 2, sam_app.user)
    run = run_tool(wrong)

    page = sign_in(sandbox, run.authorize_url() or "")

    assert run.finish() == 1
    assert page.status_code == 200  # the sign-in itself worked; redeeming the code did not
    line = one_error_line(run)
    assert "AADSTS7000215" in line and "Value (not its Secret ID)" in line and sam_app.client_id in line
    [redemption] = sandbox.entra.requests_to("token")
    assert redemption.status == 401
    assert_nothing_written(sandbox)
    assert_nothing_secret_printed(sandbox, wrong, run)


def test_a_callback_with_another_state_is_refused_and_the_real_one_still_completes(
    sandbox: Sandbox, sam_app: SamApp, run_tool: Callable[..., ToolRun]
) -> None:
    run = run_tool(sam_app)
    url = run.authorize_url() or ""
    redirect_uri = parse_qs(urlsplit(url).query)["redirect_uri"][0]

    forged = requests.get(redirect_uri, params={"code": "forged-code", "state": "not-this-run"}, timeout=10)
    no_state = requests.get(redirect_uri, params={"code": "forged-code"}, timeout=10)
    favicon = requests.get(f"{redirect_uri}/favicon.ico", timeout=10)
    real = sign_in(sandbox, url)

    assert run.finish() == 0, run.stderr
    assert (forged.status_code, no_state.status_code, favicon.status_code) == (400, 400, 404)
    assert "Sign-in response refused" in forged.text and real.status_code == 200
    [redemption] = sandbox.entra.requests_to("token")
    assert redemption.form["code"] != "forged-code" and redemption.status == 200
    assert sandbox.key_vault.writes(REFRESH_TOKEN_SECRET) == 1


def test_no_sign_in_times_out_with_a_clear_message(
    sandbox: Sandbox, sam_app: SamApp, run_tool: Callable[..., ToolRun]
) -> None:
    run = run_tool(sam_app, "--timeout", "1")

    assert run.authorize_url()
    assert run.finish() == 1
    line = one_error_line(run)
    assert "no sign-in came back to http://localhost:" in line and "run the tool again" in line
    assert_nothing_written(sandbox)


def test_a_busy_port_exits_1_before_anyone_signs_in(
    sandbox: Sandbox, sam_app: SamApp, run_tool: Callable[..., ToolRun]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        run = run_tool(sam_app, port=port)

        assert run.authorize_url() is None
        assert run.finish() == 1

    assert f"port {port} on 127.0.0.1 is in use" in one_error_line(run)
    assert sandbox.entra.requests_to("authorize") == []


@pytest.mark.parametrize("route", ["get_secret", "set_secret"])
def test_a_key_vault_403_names_the_role_to_grant(
    sandbox: Sandbox, sam_app: SamApp, run_tool: Callable[..., ToolRun], route: str
) -> None:
    """Reading is checked before anyone signs in; a write refused after the sign-in is reported the same way."""
    body = {
        "error": {
            "code": "Forbidden",
            "message": "Caller is not authorized to perform action on resource.",
            "innererror": {"code": "ForbiddenByRbac"},
        }
    }
    sandbox.key_vault.faults.add(route, status=403, body=body)
    run = run_tool(sam_app)

    url = run.authorize_url()
    if route == "set_secret":
        assert url and sign_in(sandbox, url).status_code == 200
    else:
        assert url is None  # no sign-in wasted on a vault the operator cannot use

    assert run.finish() == 1
    line = one_error_line(run)
    assert "HTTP 403 ForbiddenByRbac" in line and "Key Vault Secrets Officer role" in line
    if route == "get_secret":
        assert_nothing_written(sandbox)
    assert_nothing_secret_printed(sandbox, sam_app, run)


# --- the command line ----------------------------------------------------------------------------------------


def test_command_line_checks_and_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    tenant, client = str(uuid.uuid4()), str(uuid.uuid4())
    env = {"SECRET_VAR": " s3cret\n", "AZURE_AUTHORITY_HOST": "https://login.microsoftonline.us/"}

    options = consent.parse_args(
        ["--vault", "kv-abc123", "--tenant", tenant, "--client-id", client, "--client-secret-env", "SECRET_VAR"], env
    )

    assert options.vault_url == "https://kv-abc123.vault.azure.net"
    assert options.client_secret == "s3cret" and "s3cret" not in repr(options)
    assert options.authority == f"https://login.microsoftonline.us/{tenant}"
    assert options.scope == "https://api.partnercenter.microsoft.com/user_impersonation"
    assert (options.port, options.open_browser, options.rotate_callback_key) == (8400, True, False)
    assert options.names == consent.SecretNames(
        "partner-center-app-id",
        "partner-center-app-secret",
        "partner-center-refresh-token",
        "callback-signing-key",
        "status-link-signing-key",
    )
    url = "https://kv-abc123.vault.usgovcloudapi.net/"
    assert consent.parse_args(["--vault", url, "--tenant", "contoso.onmicrosoft.com", "--client-id", client,
                               "--client-secret-env", "SECRET_VAR"], env).vault_url == url.rstrip("/")  # fmt: skip

    for bad in (["--vault", "http://kv.example"], ["--tenant", "common"], ["--client-id", "nope"], ["--port", "80"]):
        args = {"--vault": "kv-abc123", "--tenant": tenant, "--client-id": client} | dict([bad])
        with pytest.raises(SystemExit) as usage:
            consent.parse_args([w for pair in args.items() for w in pair], env)
        assert usage.value.code == 2
    capsys.readouterr()

    assert consent.main(["--vault", "kv-abc123", "--tenant", tenant, "--client-id", client,
                         "--client-secret-env", "UNSET_VARIABLE_FOR_TEST"]) == 1  # fmt: skip
    assert "UNSET_VARIABLE_FOR_TEST (--client-secret-env) is not set" in capsys.readouterr().err
    with pytest.raises(consent.ConsentError, match="must name five different secrets"):
        consent.SecretNames.from_env({"PARTNER_CENTER_APP_SECRET_SECRET": "partner-center-app-id"})


def test_a_sign_in_without_mfa_is_refused_and_nothing_is_written(
    sandbox: Sandbox, sam_app: SamApp, run_tool: Callable[..., ToolRun], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Partner Center refuses App+User tokens without MFA since 2026-04-01: storing such a consent would only
    move the failure to the first upgrade."""
    monkeypatch.setattr(sandbox.entra, "sign_in_with_mfa", False)
    run = run_tool(sam_app)

    page = sign_in(sandbox, run.authorize_url() or "")

    assert run.finish() == 1
    assert page.status_code == 200  # the sign-in and the code redemption worked; the token lacks MFA
    [redemption] = sandbox.entra.requests_to("token")
    assert redemption.status == 200
    line = one_error_line(run)
    assert "did not use multi-factor authentication" in line and "amr is: pwd" in line
    assert "nothing was written to Key Vault" in line and "run the tool again" in line
    assert_nothing_written(sandbox)
    assert_nothing_secret_printed(sandbox, sam_app, run)


# --- the rehearsal (make consent-rehearsal) -------------------------------------------------------------------


def test_the_rehearsal_runs_the_tool_against_its_own_sandbox_and_signs_in_by_itself() -> None:
    """`make consent-rehearsal` is one command: no sandbox started by hand, no secret read out of the vault, no
    curl sign-in. It prints the tool's real output, with a smoke test that works (not the nil GUID, a 400)."""
    environment = {k: v for k, v in os.environ.items() if k not in FOREIGN}
    rehearsal = subprocess.run(
        [sys.executable, "-m", "tools.consent_rehearsal"],
        check=False,
        cwd=ROOT,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert rehearsal.returncode == 0, rehearsal.stdout + rehearsal.stderr
    out = rehearsal.stdout
    assert "signed in as pc-integration@partner.example with MFA" in out and "Rehearsal passed" in out
    for name in (*SAM_NAMES, CALLBACK_SIGNING_KEY_SECRET, STATUS_LINK_KEY_SECRET):
        assert re.search(rf"^  \|   {re.escape(name)} +(written|created) +version \w+", out, re.MULTILINE), name
    assert 'make consent ARGS="--vault <vault>' in out
    assert "00000000-0000-0000-0000-000000000000" not in out and "upgrades/$ID?customerId=" in out
    assert "Rehearsal~" not in out + rehearsal.stderr  # the client secret it made up is never printed
    assert "Traceback" not in out + rehearsal.stderr
