"""A throw-away certificate authority so the stand-ins can speak real HTTPS on 127.0.0.1.

Clients trust it the way they would trust any private CA: through a CA bundle file. `bundle.pem` holds
certifi's public roots plus the local CA, so pointing `REQUESTS_CA_BUNDLE`, `SSL_CERT_FILE` and
`CURL_CA_BUNDLE` at it keeps public hosts verifiable while the stand-ins become trusted too.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import certifi
import trustme

SERVER_NAMES = ("127.0.0.1", "localhost")


class LocalCA:
    """Creates a CA in `directory` and one server certificate for 127.0.0.1 and localhost.

    Files written: `ca.pem` (the CA certificate), `bundle.pem` (certifi's roots + the CA),
    `server-cert.pem` and `server-key.pem` (the server certificate and its key, for tools that want files,
    e.g. Azurite's `--cert/--key`).
    """

    def __init__(self, directory: Path, *, public_roots: bool = True) -> None:
        """`public_roots=False`: `bundle.pem` holds the local CA only. Every new TLS connection loads the bundle
        (urllib3 builds a context per connection), and parsing certifi's ~150 roots costs ~20 ms of CPU each time:
        a test suite that never reaches a public host saves that on every cold client."""
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._ca = trustme.CA(organization_name="Partner Center Upgrade Functions sandbox")
        self._server_cert = self._ca.issue_cert(*SERVER_NAMES)

        self.ca_path = directory / "ca.pem"
        self.bundle_path = directory / "bundle.pem"
        self.cert_path = directory / "server-cert.pem"
        self.key_path = directory / "server-key.pem"

        ca_pem = self._ca.cert_pem.bytes()
        self.ca_path.write_bytes(ca_pem)
        roots = Path(certifi.where()).read_bytes().rstrip(b"\n") + b"\n" if public_roots else b""
        self.bundle_path.write_bytes(roots + ca_pem)
        self.cert_path.write_bytes(b"".join(blob.bytes() for blob in self._server_cert.cert_chain_pems))
        self.key_path.write_bytes(self._server_cert.private_key_pem.bytes())
        self.key_path.chmod(0o600)

    def server_context(self, *names: str) -> ssl.SSLContext:
        """A fresh server-side TLS context presenting the certificate for 127.0.0.1 and localhost, or, when
        `names` are given, a new certificate for those names (e.g. a callback receiver posing as
        hooks.example.test while it listens on 127.0.0.1)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        (self._ca.issue_cert(*names) if names else self._server_cert).configure_cert(context)
        return context
