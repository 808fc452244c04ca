"""Which callback URLs the app may call: https, a host name on CALLBACK_ALLOWED_HOSTS, no IP literal.

Checked when a callbackUrl is submitted and again before each delivery (the allow-list may have changed).
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

MAX_CALLBACK_URL_LENGTH = 2048


def callback_url_problem(url: Any, allowed_hosts: tuple[str, ...]) -> str | None:
    """Why a callback URL is refused, or None when it may be called."""
    if not allowed_hosts:
        return "callbacks are not enabled on this deployment (CALLBACK_ALLOWED_HOSTS is not set)"
    if not isinstance(url, str):
        return "must be a string"
    if len(url) > MAX_CALLBACK_URL_LENGTH or not url.isascii() or any(c <= " " for c in url):
        return f"must be an ASCII URL of at most {MAX_CALLBACK_URL_LENGTH} characters without spaces"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "must be an absolute https URL"
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not host:
        return "must be an absolute https URL"
    if parts.username is not None or parts.password is not None or parts.fragment:
        return "must not contain credentials or a fragment"
    if port == 0:
        return "must not use port 0"
    if _is_ip_literal(host):
        return "must use a host name, not an IP address"
    if not host_allowed(host, allowed_hosts):
        return "host is not on the callback allow-list (CALLBACK_ALLOWED_HOSTS)"
    return None


def host_allowed(host: str, allowed_hosts: tuple[str, ...]) -> bool:
    host = host.lower().rstrip(".")
    for allowed in allowed_hosts:
        if allowed.startswith("*."):
            suffix = allowed[1:]
            if host.endswith(suffix) and len(host) > len(suffix):
                return True
        elif host == allowed:
            return True
    return False


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        # Also refuse the numeric forms resolvers accept as IPv4 (2130706433, 0x7f.1, 127.1).
        return all(part.isdigit() or part.lower().startswith("0x") for part in host.split("."))
    return True
