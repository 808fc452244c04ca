"""Where a callback connects: resolve its host once, refuse non-public addresses, connect to the address checked.

A name on a `*.suffix` allow-list entry is chosen by whoever controls that zone, so it may resolve to loopback,
a private network or the cloud metadata endpoint. Before each delivery the host is resolved (`getaddrinfo`) and
the callback is refused when any address is loopback, private, link-local, multicast, reserved, unspecified or
otherwise not global, unless an exact (non-wildcard) allow-list entry names the host: that is how `localhost`
works for local runs. The request then goes to the address that was checked (the URL carries the IP, `Host`,
SNI and the certificate check carry the name), so a second lookup by the HTTP client cannot be answered
differently (DNS rebinding). See docs/design.md, "Callbacks", and docs/webhooks.md.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

from shared.callback_urls import HTTPS_PORT, CallbackTarget

type Resolver = Callable[..., Sequence[tuple[Any, ...]]]  # socket.getaddrinfo's shape
MAX_ADDRESSES = 3  # addresses tried, in resolver order, when connecting fails

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressRefused(Exception):
    """The host resolves to an address callbacks must not reach."""


def checked_addresses(target: CallbackTarget, resolve: Resolver) -> list[str]:
    """The addresses a callback to `target` may connect to, in resolver order; raises AddressRefused, or OSError
    when the name does not resolve."""
    found = resolve(target.host, target.port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(str(entry[4][0]).split("%")[0] for entry in found))
    if not addresses:
        raise OSError("the host name resolved to no address")
    if not target.allowed_by.is_wildcard and target.allowed_by.host == target.host:
        return addresses[:MAX_ADDRESSES]
    if not all(is_public(ipaddress.ip_address(address)) for address in addresses):
        raise AddressRefused("the host resolves to a loopback, private or otherwise non-public address")
    return addresses[:MAX_ADDRESSES]


def is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def pinned_request(url: str, target: CallbackTarget, address: str) -> tuple[str, str]:
    """(URL naming `address` instead of the host, the `Host` header naming the host)."""
    parts = urlsplit(url)
    literal = f"[{address}]" if ":" in address else address
    port = "" if target.port == HTTPS_PORT else f":{target.port}"
    return urlunsplit(parts._replace(netloc=literal + port)), target.host + port


class PinnedAddressAdapter(HTTPAdapter):
    """For a URL whose host is an IP address and a `Host` header naming the server, TLS sends that name as SNI
    and checks the certificate against it, while the TCP connection goes to the address in the URL."""

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[Any, Any]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        name = urlsplit("//" + str(request.headers.get("Host", ""))).hostname
        if not (name and _is_ip(str(host_params.get("host", "")).strip("[]"))):
            return host_params, pool_kwargs
        pinned: dict[str, Any] = {**pool_kwargs, "server_hostname": name, "assert_hostname": name}
        return host_params, pinned


def callback_session(pool_size: int = 8) -> requests.Session:
    """A session for callbacks only: https through PinnedAddressAdapter, no retries (the queue retries)."""
    session = requests.Session()
    session.mount("https://", PinnedAddressAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0))
    return session


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
