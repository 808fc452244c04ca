"""The app's outbound HTTP sessions: pooled, no hidden retries, and TLS verified with trust loaded once.

requests (through urllib3) builds an `SSLContext` for every new connection and loads the CA bundle into it.
certifi's ~150 roots take about 20 ms of CPU to parse each time on the project machine, so a cold instance
paid that once per connection it opened (Key Vault, Entra, Partner Center, each storage connection in Azure),
and a busy one for every connection its pools added (docs/design.md, "Performance"; bench/README.md section 3
measures it). Here every session verifies with one context per CA bundle, built on first use from the bundle
requests itself would use (`verify=True`: certifi; `REQUESTS_CA_BUNDLE` / `CURL_CA_BUNDLE`: that file), with
urllib3's defaults. Trust is unchanged: the same roots, `CERT_REQUIRED`, hostname checked by OpenSSL. A CA
directory or a client certificate falls back to urllib3's own per-connection context (nothing here uses
either). The bundle is read once per process: replacing the file later takes a restart.
"""

from __future__ import annotations

import os
import ssl
import threading
from typing import Any

import requests
from azure.core.pipeline.transport import RequestsTransport
from requests.adapters import HTTPAdapter
from requests.utils import DEFAULT_CA_BUNDLE_PATH
from urllib3.util.retry import Retry
from urllib3.util.ssl_ import create_urllib3_context

TIMEOUTS: dict[str, Any] = {"connection_timeout": 5, "read_timeout": 10}

_contexts: dict[str, ssl.SSLContext] = {}
_lock = threading.Lock()


def trust_context(verify: object, cert: object = None) -> ssl.SSLContext | None:
    """The shared context for a requests `verify` value (True or a CA bundle file), or None where urllib3
    should build its own (verification off, a CA directory, a client certificate)."""
    if cert is not None or verify is False or verify is None:
        return None
    bundle = DEFAULT_CA_BUNDLE_PATH if verify is True else str(verify)
    context = _contexts.get(bundle)
    if context is not None or os.path.isdir(bundle):
        return context
    with _lock:  # single flight: concurrent first connections load the bundle once
        context = _contexts.get(bundle)
        if context is None:
            context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
            context.load_verify_locations(cafile=bundle)
            _contexts[bundle] = context
    return context


class SharedTrustAdapter(HTTPAdapter):
    """An HTTPAdapter whose HTTPS pools verify with `trust_context` instead of loading the bundle per connection."""

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[Any, Any]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        context = trust_context(verify, cert) if host_params.get("scheme") == "https" else None
        if context is not None:
            pool_kwargs.pop("ca_certs", None)
            pool_kwargs["ssl_context"] = context
        return host_params, pool_kwargs

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        super().cert_verify(conn, url, verify, cert)  # type: ignore[no-untyped-call]
        # A pool holds an ssl_context only if build_connection_pool_key_attributes keyed it with the shared
        # context of this `verify`, which holds these roots already: loading them again is the cost avoided.
        if getattr(conn, "conn_kw", {}).get("ssl_context") is not None:
            conn.ca_certs = None


def pooled_session(pool_size: int, retries: Retry | int = 0) -> requests.Session:
    """A session keeping up to `pool_size` connections per host; retries are the caller's."""
    session = requests.Session()
    adapter = SharedTrustAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=retries)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def sdk_transport(pool_size: int) -> RequestsTransport:
    """An Azure SDK transport over `pooled_session` (the SDK's retry policy stays the only retry), with the
    timeouts every outbound call has. Its own session each: a client's `close()` closes only its pool."""
    session = pooled_session(pool_size, Retry(total=False, redirect=False, raise_on_status=False))
    return RequestsTransport(session=session, session_owner=True, **TIMEOUTS)
