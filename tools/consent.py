"""One-time Secure Application Model (SAM) consent: the integration user signs in with MFA, and the SAM credentials
go to Key Vault under the names the app reads.

    make consent ARGS="--vault <name or https://<name>.vault.azure.net> --tenant <partner tenant> \\
        --client-id <SAM app id> [--login-hint integration@partner.example] [--client-secret-env VAR]"

from the repository root (`make consent` creates the project's virtual environment if it is missing and runs
`.venv/bin/python -m tools.consent $ARGS`). `make consent-rehearsal` runs it against the local sandbox first
(tools/consent_rehearsal.py).

1. Runs the OAuth 2.0 authorization-code flow with PKCE against `{authority host}/{tenant}` on the redirect URI
   `http://localhost:<port>`, served by a one-shot loopback server (tools/loopback.py). It asks for
   `{resource}/user_impersonation` plus `offline_access openid profile`, and forces a fresh sign-in with MFA:
   `prompt=login` (the browser may hold someone else's session) and `amr_values=mfa` (as Microsoft's Partner
   Center consent sample does).
2. Redeems the code with the app's client secret, and checks that Entra issued a refresh token for the Partner
   Center permission and that the access token proves MFA (`amr` contains `mfa`): Partner Center refuses
   App+User calls without it since 2026-04-01, so a consent without MFA is refused and nothing is written.
3. Writes new versions of the app id, the app secret and the refresh token (expiring in 90 days, the refresh
   token's lifetime) to the vault with `DefaultAzureCredential` (the operator's `az login`), tagged with who
   consented; creates the callback signing key if the vault has none (`--rotate-callback-key` replaces it), and
   the follow-link signing key (`STATUS_LINK_KEY_SECRET`: base64url of 32 random bytes) if the vault has none.
4. Prints what it wrote: names, versions, expiry. Never a secret value.

Running it again writes new versions: that is how consent is renewed after AADSTS50076/50078/700082.
Every failure is one line on stderr and exit code 1.

MSAL does the OAuth part (PKCE, state, nonce, the authorize URL, the code redemption, ID token claims); it returns
the refresh token of an authorization-code redemption as it is. MSAL Python's `initiate_auth_code_flow` has no
parameter for extra query fields, so `amr_values=mfa` is appended to the URL it builds.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import getpass
import logging
import os
import re
import secrets
import sys
import warnings
import webbrowser
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO
from urllib.parse import urlencode, urlsplit

import msal  # type: ignore[import-untyped]
import requests
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.identity import DefaultAzureCredential
from azure.keyvault.secrets import SecretClient

from shared.correlation import GUID_PATTERN
from shared.partner_center.claims import authentication_methods, proves_mfa
from shared.partner_center.sam import REFRESH_TOKEN_LIFETIME_DAYS
from shared.settings import SETTINGS
from tools.loopback import CallbackTimeout, LoopbackReceiver, PortUnavailable

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
DEFAULT_RESOURCE = "https://api.partnercenter.microsoft.com"
DEFAULT_PORT = 8400
DEFAULT_TIMEOUT_SECONDS = 300
PERMISSION = "user_impersonation"
WRITTEN_BY = "tools.consent"
CONTENT_TYPE = "text/plain"  # what the app itself writes (shared/key_vault.py), so versions stay alike
# A random upgrade id: it cannot exist, so a 404 proves every dependency answered (the nil GUID is refused: 400).
SMOKE_TEST = (
    'ID=$(python3 -c "import uuid; print(uuid.uuid4())")',
    'curl -si "$API/upgrades/$ID?customerId=<a customer GUID>" -H "x-functions-key: $KEY"   # 404: all answered',
)

# The app settings that name the secrets (docs/design.md, "Settings"); the tool honours them like the app does.
# In the order of SecretNames' fields.
NAME_SETTINGS = (
    "PARTNER_CENTER_APP_ID_SECRET",
    "PARTNER_CENTER_APP_SECRET_SECRET",
    "PARTNER_CENTER_REFRESH_TOKEN_SECRET",
    "CALLBACK_SIGNING_KEY_SECRET",
    "STATUS_LINK_KEY_SECRET",
)
LINK_KEY_BYTES = 32

_DOMAIN = re.compile(r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}")
_VAULT_NAME = re.compile(r"[A-Za-z](?!.*--)[A-Za-z0-9-]{1,22}[A-Za-z0-9]")
_SECRET_NAME = re.compile(r"[0-9A-Za-z-]{1,127}")
_AADSTS = re.compile(r"AADSTS(\d+)")


class ConsentError(Exception):
    """A failure the operator can act on. The message is one line and holds no secret."""


# --- options ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SecretNames:
    app_id: str
    app_secret: str
    refresh_token: str
    callback_key: str
    link_key: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SecretNames:
        """The names the app reads: its settings when set, else docs/design.md's defaults."""
        defaults = {spec.name: spec.default or "" for spec in SETTINGS}
        names = [env.get(setting, "").strip() or defaults[setting] for setting in NAME_SETTINGS]
        for setting, name in zip(NAME_SETTINGS, names, strict=True):
            if not _SECRET_NAME.fullmatch(name):
                raise ConsentError(f"{setting} must be a Key Vault secret name (letters, digits, hyphens)")
        if len({name.lower() for name in names}) != len(names):
            raise ConsentError(f"{', '.join(NAME_SETTINGS)} must name five different secrets")
        return cls(*names)


@dataclass(frozen=True)
class Options:
    vault_url: str
    tenant: str
    client_id: str
    client_secret: str = field(repr=False)
    authority_host: str = DEFAULT_AUTHORITY_HOST
    resource: str = DEFAULT_RESOURCE
    port: int = DEFAULT_PORT
    login_hint: str | None = None
    open_browser: bool = True
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    rotate_callback_key: bool = False
    names: SecretNames = field(default_factory=lambda: SecretNames.from_env({}))

    @property
    def authority(self) -> str:
        return f"{self.authority_host}/{self.tenant}"

    @property
    def scope(self) -> str:
        return f"{self.resource}/{PERMISSION}"


def parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=".venv/bin/python -m tools.consent",
        description=(
            "Sign the Partner Center integration user in with MFA (Secure Application Model consent) and store the "
            "SAM app id, app secret and refresh token in Key Vault under the names the app reads "
            f"(settings {', '.join(NAME_SETTINGS)} when set, else docs/design.md's defaults). Run it again to renew "
            "consent: it writes new versions."
        ),
    )
    p.add_argument("--vault", required=True, type=_vault_url, help="Key Vault name, or its URL")
    p.add_argument("--tenant", required=True, type=_tenant, help="the partner tenant: GUID or domain name")
    p.add_argument("--client-id", required=True, type=_guid, help="application (client) id of the SAM app")
    p.add_argument(
        "--client-secret-env",
        metavar="VAR",
        help="environment variable holding the SAM app's client secret (default: prompt for it, input hidden)",
    )
    p.add_argument(
        "--authority-host",
        type=_https_root,
        default=env.get("AZURE_AUTHORITY_HOST")
        or DEFAULT_AUTHORITY_HOST,  # argparse passes string defaults through `type` too
        help="Entra authority host (default: $AZURE_AUTHORITY_HOST, else %(default)s)",
    )
    p.add_argument(
        "--resource",
        type=_https_root,
        default=env.get("PARTNER_CENTER_BASE_URL") or DEFAULT_RESOURCE,
        help="Partner Center API root; the tool asks for <resource>/user_impersonation "
        "(default: $PARTNER_CENTER_BASE_URL, else %(default)s)",
    )
    p.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help="loopback port of the redirect URI http://localhost:<port> (default %(default)s; 0: any free port)",
    )
    p.add_argument("--login-hint", metavar="UPN", help="the integration user's sign-in name, pre-filled in Entra")
    p.add_argument("--no-browser", action="store_true", help="print the sign-in URL instead of opening a browser")
    p.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT_SECONDS,
        help="seconds to wait for the sign-in to come back (default %(default)s)",
    )
    p.add_argument(
        "--rotate-callback-key",
        action="store_true",
        help="write a new callback signing key even if the vault has one (receivers must accept both for a while)",
    )
    return p


def parse_args(argv: Sequence[str] | None, env: Mapping[str, str]) -> Options:
    args = parser(env).parse_args(argv)
    names = SecretNames.from_env(env)
    return Options(
        vault_url=args.vault,
        tenant=args.tenant,
        client_id=args.client_id.lower(),
        client_secret=_client_secret(args.client_secret_env, args.client_id, env),
        authority_host=args.authority_host,
        resource=args.resource,
        port=args.port,
        login_hint=args.login_hint,
        open_browser=not args.no_browser,
        timeout=args.timeout,
        rotate_callback_key=args.rotate_callback_key,
        names=names,
    )


def _client_secret(variable: str | None, client_id: str, env: Mapping[str, str]) -> str:
    if variable:
        value = env.get(variable, "").strip()
        if not value:
            raise ConsentError(f"environment variable {variable} (--client-secret-env) is not set or empty")
        return value
    if not sys.stdin.isatty():
        raise ConsentError("no client secret: pass --client-secret-env VAR, or run in a terminal to be prompted")
    value = getpass.getpass(f"Client secret (the Value) of SAM app {client_id}, input hidden: ").strip()
    if not value:
        raise ConsentError("no client secret entered")
    return value


def _vault_url(value: str) -> str:
    value = value.strip()
    if _VAULT_NAME.fullmatch(value):
        return f"https://{value.lower()}.vault.azure.net"
    parts = urlsplit(value)
    if parts.scheme == "https" and parts.hostname and parts.path in ("", "/") and not parts.query:
        return f"https://{parts.netloc}"
    raise argparse.ArgumentTypeError("give the vault's name (3-24 letters, digits, hyphens) or its https URL")


def _tenant(value: str) -> str:
    if GUID_PATTERN.fullmatch(value) or _DOMAIN.fullmatch(value):
        return value
    raise argparse.ArgumentTypeError("give the partner tenant's id (a GUID) or a domain name (contoso.onmicrosoft.com)")


def _guid(value: str) -> str:
    if GUID_PATTERN.fullmatch(value):
        return value
    raise argparse.ArgumentTypeError("give the application (client) id, a GUID")


def _https_root(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme != "https" or not parts.hostname or parts.path.strip("/") or parts.query or parts.fragment:
        raise argparse.ArgumentTypeError("give an https URL without a path, e.g. https://login.microsoftonline.com")
    return f"https://{parts.netloc}"


def _port(value: str) -> int:
    if value.isdigit() and (int(value) == 0 or 1024 <= int(value) <= 65535):
        return int(value)
    raise argparse.ArgumentTypeError("give a port from 1024 to 65535 (8400-8999 is usual), or 0 for any free port")


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if 0 < seconds <= 3600:
        return seconds
    raise argparse.ArgumentTypeError("give a number of seconds from 1 to 3600")


# --- the consent -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Consent:
    refresh_token: str = field(repr=False)
    user: str | None
    scope: str


@dataclass(frozen=True)
class Written:
    name: str
    action: str  # "written", "created", "rotated", "kept"
    version: str | None
    expires_on: datetime | None = None


def sign_in(options: Options, out: TextIO) -> Consent:
    """The authorization-code flow with PKCE through the loopback redirect; the code redeemed for tokens."""
    with LoopbackReceiver(options.port) as receiver:
        app = _msal_app(options)
        with warnings.catch_warnings():
            # MSAL recommends response_mode=form_post; the response only travels over loopback to this process,
            # and the code is bound to the PKCE verifier and the client secret.
            warnings.filterwarnings("ignore", message="response_mode='form_post' is recommended", category=UserWarning)
            flow: dict[str, Any] = app.initiate_auth_code_flow(
                [options.scope], redirect_uri=receiver.redirect_uri, prompt="login", login_hint=options.login_hint
            )
        receiver.expect(flow["state"])
        url = f"{flow['auth_uri']}&{urlencode({'amr_values': 'mfa'})}"
        _send_user_to(url, options, receiver.redirect_uri, out)
        try:
            response = receiver.wait(options.timeout)
        except CallbackTimeout:
            raise ConsentError(
                f"no sign-in came back to {receiver.redirect_uri} in {options.timeout:g} s; run the tool "
                "again. If the browser showed an AADSTS error instead (AADSTS50011: add http://localhost as a Web "
                "redirect URI of the app; AADSTS700016: check --client-id and --tenant), fix that first"
            ) from None
    try:
        result: dict[str, Any] = app.acquire_token_by_auth_code_flow(flow, response)
    except requests.RequestException as error:
        raise ConsentError(f"cannot reach Entra ID at {options.authority_host} ({type(error).__name__})") from None
    except (ValueError, RuntimeError) as error:  # MSAL: state or nonce mismatch
        raise ConsentError(f"the sign-in response was refused: {_first_line(str(error))}") from None
    if "error" in result:
        stage = "sign-in" if "error" in response else "code redemption"
        raise ConsentError(_explain(result, stage, options))
    return _accept(result, options)


def _msal_app(options: Options) -> Any:
    try:
        # instance_discovery=False: the authority is the one the operator named (as the app's AZURE_AUTHORITY_HOST);
        # MSAL reads its OpenID configuration and does not ask login.microsoftonline.com to vouch for it.
        return msal.ConfidentialClientApplication(
            options.client_id,
            client_credential=options.client_secret,
            authority=options.authority,
            instance_discovery=False,
        )
    except ValueError:
        raise ConsentError(
            f"Entra ID at {options.authority_host} does not know tenant {options.tenant}; check --tenant "
            "and --authority-host"
        ) from None
    except requests.RequestException as error:
        raise ConsentError(f"cannot reach Entra ID at {options.authority_host} ({type(error).__name__})") from None


def _send_user_to(url: str, options: Options, redirect_uri: str, out: TextIO) -> None:
    who = f" as {options.login_hint}" if options.login_hint else " as the Partner Center integration user"
    opened = False
    if options.open_browser:
        try:
            opened = webbrowser.open(url, new=1)
        except webbrowser.Error:
            opened = False
    if opened:
        _say(out, f"A browser window opened: sign in{who}, with MFA. If it did not open, use this address:")
    else:
        _say(out, f"Open this address in a browser and sign in{who}, with MFA:")
    _say(out, f"\n    {url}\n")
    _say(out, f"Waiting up to {options.timeout:g} s for the sign-in to come back to {redirect_uri} ...")


def _accept(result: dict[str, Any], options: Options) -> Consent:
    scope = str(result.get("scope") or "")
    granted = [s.rsplit("/", 1)[-1] for s in scope.split()]
    if scope and PERMISSION not in granted:
        raise ConsentError(
            f"Entra ID issued a token without the Partner Center permission (scope: {scope}); add the delegated "
            f"permission Microsoft Partner Center > {PERMISSION} to app {options.client_id}, grant admin consent, "
            "and run the tool again"
        )
    refresh_token = result.get("refresh_token")
    if not isinstance(refresh_token, str) or not refresh_token:
        raise ConsentError(
            "Entra ID issued no refresh token. It only does when the consent includes offline_access (the tool asks "
            "for it) and the app is a confidential Web app: check that the registration's platform is Web (not "
            "single-page application or mobile/desktop) and that no policy strips offline_access, then run again"
        )
    access_token = result.get("access_token")
    if not isinstance(access_token, str) or not proves_mfa(access_token):
        methods = ", ".join(authentication_methods(access_token or "")) or "none"
        raise ConsentError(
            f"the sign-in did not use multi-factor authentication (the access token's amr is: {methods}), and "
            "Partner Center refuses App+User calls without MFA since 2026-04-01; nothing was written to Key "
            "Vault. Enforce MFA for the integration user (Conditional Access or security defaults), then run "
            "the tool again and complete the MFA prompt"
        )
    claims = result.get("id_token_claims") or {}
    user = next((str(claims[k]) for k in ("preferred_username", "upn", "email") if claims.get(k)), None)
    return Consent(refresh_token=refresh_token, user=user, scope=scope)


_EXPLANATIONS = {
    65004: "the user declined consent or cancelled the sign-in. Run the tool again, sign in as the integration user "
    "and accept the permissions (if users may not consent in your tenant, an administrator must grant admin "
    "consent to the app first)",
    65001: "the app has not been granted the Partner Center permission. Grant admin consent for it (Entra admin "
    "center > App registrations > the app > API permissions), then run the tool again",
    7000215: "the client secret is wrong. Pass the secret's Value (not its Secret ID) of a current client secret of "
    "app {client_id}",
    7000222: "the client secret has expired. Add a new client secret to app {client_id} and run the tool with it",
    700016: "tenant {tenant} has no app {client_id}. Check --client-id and --tenant",
    90002: "tenant {tenant} does not exist at {authority_host}. Check --tenant and --authority-host",
    50011: "the redirect URI is not registered. Add http://localhost as a Web redirect URI of app {client_id}",
    500113: "the app has no redirect URI. Add http://localhost as a Web redirect URI of app {client_id}",
    54005: "the sign-in response was already used. Run the tool again",
    70008: "the sign-in response expired before it was redeemed. Run the tool again",
    50148: "the PKCE check failed. Run the tool again",
    50076: "multi-factor authentication is required. Run the tool again and complete the MFA prompt",
    50079: "the user must register for multi-factor authentication first (https://aka.ms/mfasetup)",
    53003: "a Conditional Access policy blocked the sign-in. Sign in from a device and place the policy allows",
}
_ERRORS = {
    "access_denied": _EXPLANATIONS[65004],
    "invalid_client": "Entra ID refused the app's credentials. Check --client-id and the client secret",
    "consent_required": _EXPLANATIONS[65001],
    "interaction_required": _EXPLANATIONS[50076],
}


def _explain(result: dict[str, Any], stage: str, options: Options) -> str:
    error = str(result.get("error") or "error")
    description = str(result.get("error_description") or "")
    codes = [c for c in result.get("error_codes") or [] if isinstance(c, int)]
    found = _AADSTS.search(description)
    code = codes[0] if codes else int(found.group(1)) if found else None
    said = _first_line(_AADSTS.sub("", description, count=1).lstrip(": ")) or error
    label = f"AADSTS{code}" if code else error
    advice = (
        _EXPLANATIONS.get(code or 0)
        or _ERRORS.get(error)
        or (
            f"see https://login.microsoftonline.com/error?code={code}"
            if code
            else "run the tool again; if it happens again, check the app registration"
        )
    )
    advice = advice.format(client_id=options.client_id, tenant=options.tenant, authority_host=options.authority_host)
    return f"Entra ID refused the {stage}: {label} ({said}) - {advice}"


# --- Key Vault -------------------------------------------------------------------------------------------------


class Vault:
    """The SAM secrets in Key Vault, as the operator (DefaultAzureCredential: `az login`)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._credential = DefaultAzureCredential()
        self._client = SecretClient(url, self._credential)

    def close(self) -> None:
        self._client.close()
        self._credential.close()

    def version_of(self, name: str) -> str | None:
        """The current version of `name`, None when there is none. Also proves the vault is reachable."""
        try:
            secret = self._client.get_secret(name)
        except ResourceNotFoundError:
            return None
        except HttpResponseError as error:
            if _error_codes(error) & {"SecretDisabled"}:
                return "(disabled)"
            raise ConsentError(self._problem(error, "read", name)) from None
        except AzureError as error:
            raise ConsentError(self._problem(error, "read", name)) from None
        return secret.properties.version

    def write(self, name: str, value: str, *, tags: dict[str, str], expires_on: datetime | None = None) -> Written:
        try:
            stored = self._client.set_secret(name, value, content_type=CONTENT_TYPE, tags=tags, expires_on=expires_on)
        except AzureError as error:
            raise ConsentError(self._problem(error, "write", name)) from None
        return Written(name, "written", stored.properties.version, stored.properties.expires_on)

    def _problem(self, error: AzureError, action: str, name: str) -> str:
        response = getattr(error, "response", None)
        status = getattr(response, "status_code", None)
        codes = _error_codes(error)
        code = next(iter(sorted(codes - {"Forbidden", "Unauthorized"})), None) or next(iter(codes), "")
        what = f"Key Vault {self.url} refused to {action} secret '{name}' (HTTP {status}{' ' + code if code else ''})"
        if isinstance(error, ClientAuthenticationError) and status is None:
            return (
                "could not get a Key Vault token with DefaultAzureCredential: sign in with `az login` as an "
                "account that has the Key Vault Secrets Officer role on the vault"
            )
        if status == 401:
            return f"{what}: sign in to the vault's tenant (`az login --tenant <tenant of the vault>`)"
        if status == 403 and "ForbiddenByFirewall" in codes:
            return f"{what}: the vault's firewall does not admit this machine; add its IP under the vault's Networking"
        if status == 403:
            return (
                f"{what}: your account needs the Key Vault Secrets Officer role on the vault (az role assignment "
                'create --role "Key Vault Secrets Officer" --assignee <you> --scope <vault id>); role assignments '
                "take a few minutes to apply"
            )
        if isinstance(error, ResourceExistsError) or status == 409:
            return (
                f"{what}: the secret is deleted but recoverable; recover it (az keyvault secret recover) or purge "
                "it, then run the tool again"
            )
        if isinstance(error, ServiceRequestError):
            return f"cannot reach Key Vault at {self.url} ({type(error).__name__}); check --vault and the network"
        return what


def _error_codes(error: AzureError) -> set[str]:
    """Key Vault's error code and inner error code (Forbidden, ForbiddenByRbac, SecretDisabled, ...)."""
    body = getattr(error, "error", None)
    codes = {str(getattr(body, "code", "") or "")}
    inner = getattr(body, "innererror", None)
    if isinstance(inner, dict):
        codes.add(str(inner.get("code") or ""))
    return codes - {""}


@dataclass(frozen=True)
class KeyVersions:
    """The current versions of the two signing keys before the sign-in (None: the vault has none)."""

    callback_key: str | None
    link_key: str | None


def store(vault: Vault, options: Options, consent: Consent, keys: KeyVersions) -> list[Written]:
    """New versions of the three SAM secrets; the callback signing key only if missing (or asked to rotate); the
    follow-link signing key only if missing (replacing it would break every link handed out)."""
    names = options.names
    tags = {"writtenBy": WRITTEN_BY}
    if consent.user:
        tags["consentedBy"] = consent.user
    with_app = {**tags, "clientId": options.client_id}
    expires_on = datetime.now(UTC) + timedelta(days=REFRESH_TOKEN_LIFETIME_DAYS)
    planned = [
        (names.app_id, options.client_id, tags, None),
        (names.app_secret, options.client_secret, with_app, None),
        (names.refresh_token, consent.refresh_token, with_app, expires_on),
    ]
    written: list[Written] = []
    for name, value, secret_tags, expiry in planned:
        try:
            written.append(vault.write(name, value, tags=secret_tags, expires_on=expiry))
        except ConsentError as error:
            done = ", ".join(w.name for w in written) or "nothing"
            raise ConsentError(f"{error}. Written before that: {done}; run the tool again once fixed") from None
    if keys.callback_key is None or options.rotate_callback_key:
        key = vault.write(names.callback_key, secrets.token_hex(32), tags={"writtenBy": WRITTEN_BY})
        action = "rotated" if keys.callback_key else "created"
        written.append(Written(key.name, action, key.version))
    else:
        written.append(Written(names.callback_key, "kept", keys.callback_key))
    if keys.link_key is None:
        value = base64.urlsafe_b64encode(secrets.token_bytes(LINK_KEY_BYTES)).rstrip(b"=").decode("ascii")
        key = vault.write(names.link_key, value, tags={"writtenBy": WRITTEN_BY})
        written.append(Written(key.name, "created", key.version))
    else:
        written.append(Written(names.link_key, "kept", keys.link_key))
    return written


# --- the command ---------------------------------------------------------------------------------------------


def run(options: Options, out: TextIO) -> list[Written]:
    vault = Vault(options.vault_url)
    try:
        # Before anyone signs in: can we reach and read the vault, and are there signing keys already?
        keys = KeyVersions(vault.version_of(options.names.callback_key), vault.version_of(options.names.link_key))
        consent = sign_in(options, out)
        if options.login_hint and consent.user and consent.user.lower() != options.login_hint.lower():
            _say(out, f"Note: signed in as {consent.user}, not {options.login_hint}; that user's consent is stored.")
        written = store(vault, options, consent, keys)
    finally:
        vault.close()
    _summary(out, options, consent, written)
    return written


def _summary(out: TextIO, options: Options, consent: Consent, written: list[Written]) -> None:
    _say(out, "")
    _say(
        out,
        f"Consent stored for {consent.user or 'the signed-in user'} (app {options.client_id}, tenant "
        f"{options.tenant}, scope {consent.scope or options.scope}).",
    )
    _say(out, f"Key Vault {options.vault_url}:")
    width = max(len(w.name) for w in written)
    for w in written:
        line = f"  {w.name:<{width}}  {w.action:<7}  version {w.version}"
        if w.expires_on:
            line += f"  expires {w.expires_on.astimezone(UTC):%Y-%m-%d %H:%M}Z (the app renews it while it runs)"
        _say(out, line)
    _say(out, "")
    _say(out, "The app picks the new versions up within minutes (its secret cache), at once after an authentication")
    _say(out, "failure; no restart is needed. Next: the smoke test in docs/deploy.md, for example")
    for line in SMOKE_TEST:
        _say(out, f"  {line}")


def _say(out: TextIO, text: str) -> None:
    print(text, file=out, flush=True)


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:200]


@contextlib.contextmanager
def _quiet_sdks() -> Iterator[None]:
    """The SDKs' own warnings (a credential that did not work, a retry) would bury the one line that says what to do."""
    loggers = [logging.getLogger(name) for name in ("azure", "msal")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        with _quiet_sdks():
            options = parse_args(argv, os.environ)
            run(options, sys.stdout)
    except ConsentError as error:
        print(f"consent: error: {' '.join(str(error).split())}", file=sys.stderr, flush=True)
        return 1
    except PortUnavailable as error:
        print(f"consent: error: {error}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("consent: interrupted; nothing more was written", file=sys.stderr, flush=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
