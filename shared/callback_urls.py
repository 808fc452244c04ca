"""Which callback URLs the app may call: https, a plain ASCII host name on CALLBACK_ALLOWED_HOSTS, no IP literal,
port 443 unless the allow-list entry names another.

Checked when a callbackUrl is submitted and again before each delivery (the allow-list may have changed). The
host checked is the host the HTTP client connects to: the URL is parsed both with `urllib.parse` and with
`urllib3.util.parse_url` (what requests uses), and refused when they disagree on scheme, host or port, so a
URL such as `https://127.0.0.1\\.hooks.example.com/` cannot pass the check as one host and connect to another.
Where the connection then goes (the resolved address) is checked at send time, see `callback_addresses`.
See docs/design.md, "Callbacks".
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

MAX_CALLBACK_URL_LENGTH = 2048
HTTPS_PORT = 443
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_ENTRY = re.compile(r"(?P<host>(\*\.)?[a-z0-9.-]+)(:(?P<port>[0-9]{1,5}))?")


@dataclass(frozen=True)
class AllowedHost:
    """One CALLBACK_ALLOWED_HOSTS entry: `host`, `*.suffix`, either with `:port` (else port 443 only)."""

    host: str
    port: int | None = None

    @property
    def is_wildcard(self) -> bool:
        return self.host.startswith("*.")

    def covers(self, host: str) -> bool:
        if self.is_wildcard:
            suffix = self.host[1:]
            return host.endswith(suffix) and len(host) > len(suffix)
        return host == self.host

    def admits(self, host: str, port: int) -> bool:
        return port == (self.port or HTTPS_PORT) and self.covers(host)


@dataclass(frozen=True)
class CallbackTarget:
    """Where a callback URL connects: its host name and port, and the allow-list entry that admits them."""

    host: str
    port: int
    allowed_by: AllowedHost


def parse_allowed_host(entry: str) -> AllowedHost | None:
    """An allow-list entry, or None when it is not `host`, `*.suffix`, `host:port` or `*.suffix:port`."""
    match = _ENTRY.fullmatch(entry.strip().lower())
    if match is None:
        return None
    host, port = match["host"], match["port"]
    if not _is_host_name(host.removeprefix("*.")) or (port is not None and not 1 <= int(port) <= 65535):
        return None
    return AllowedHost(host, int(port) if port is not None else None)


def callback_url_problem(url: Any, allowed_hosts: tuple[str, ...]) -> str | None:
    """Why a callback URL is refused, or None when it may be called."""
    target = callback_target(url, allowed_hosts)
    return target if isinstance(target, str) else None


def callback_target(url: Any, allowed_hosts: tuple[str, ...]) -> CallbackTarget | str:
    """Where the URL connects, or why it is refused (a reason that never repeats the URL)."""
    if not allowed_hosts:
        return "callbacks are not enabled on this deployment (CALLBACK_ALLOWED_HOSTS is not set)"
    if not isinstance(url, str):
        return "must be a string"
    if len(url) > MAX_CALLBACK_URL_LENGTH or not url.isascii() or any(c <= " " or c == "\x7f" for c in url):
        return f"must be an ASCII URL of at most {MAX_CALLBACK_URL_LENGTH} characters without spaces"
    if "\\" in url:
        return "must not contain a backslash"
    endpoint = _endpoint(url)
    if isinstance(endpoint, str):
        return endpoint
    host, port = endpoint
    if _is_ip_literal(host):
        return "must use a host name, not an IP address"
    if not _is_host_name(host):
        return "must use a plain ASCII host name (letters, digits, hyphens; no empty labels, no %-escapes)"
    entries = [entry for entry in map(parse_allowed_host, allowed_hosts) if entry is not None]
    entries.sort(key=lambda entry: entry.is_wildcard)  # an exact entry wins: it may name a loopback host
    for entry in entries:
        if entry.admits(host, port):
            return CallbackTarget(host, port, entry)
    if any(entry.covers(host) for entry in entries):
        return "port is not allowed: only 443 unless the CALLBACK_ALLOWED_HOSTS entry names the port"
    return "host is not on the callback allow-list (CALLBACK_ALLOWED_HOSTS)"


def _endpoint(url: str) -> tuple[str, int] | str:
    """(host, port) that both parsers agree on, or why the URL is refused. urllib3 is imported here, on the
    first callbackUrl, not with the settings every function loads (cold start, docs/design.md)."""
    from urllib3.exceptions import LocationParseError  # noqa: PLC0415
    from urllib3.util import parse_url  # noqa: PLC0415

    try:
        parts = urlsplit(url)
        port = parts.port
        client = parse_url(url)
    except (ValueError, LocationParseError):
        return "must be an absolute https URL"
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not host:
        return "must be an absolute https URL"
    if "@" in parts.netloc or client.auth is not None or parts.fragment:
        return "must not contain credentials or a fragment"
    if (client.scheme, (client.host or "").lower(), client.port) != ("https", _bracketed(host, parts.netloc), port):
        return "must be an absolute https URL that every HTTP client reads the same way"
    if port == 0:
        return "must not use port 0"
    return host, port if port is not None else HTTPS_PORT


def _bracketed(host: str, netloc: str) -> str:
    """The host as urllib3 reports it: IPv6 literals keep their brackets."""
    return f"[{host}]" if netloc.startswith("[") else host


def _is_host_name(host: str) -> bool:
    return len(host) <= 253 and all(_LABEL.fullmatch(label) for label in host.split("."))


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        # Also refuse the numeric forms resolvers accept as IPv4 (2130706433, 0x7f.1, 127.1).
        return all(part.isdigit() or part.lower().startswith("0x") for part in host.split("."))
    return True
