"""Outbound TLS (shared/outbound_http.py): one trust store per CA bundle, loaded once per process, and verification
exactly as strict as requests' own: a server outside the bundle, or with a certificate for another name, is
refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from sandbox.tls import LocalCA
from shared.outbound_http import pooled_session, sdk_transport
from support.receiver import CallbackReceiver


@pytest.fixture(scope="module")
def trusted(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return LocalCA(tmp_path_factory.mktemp("trusted"), public_roots=False)


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return LocalCA(tmp_path_factory.mktemp("foreign"), public_roots=False)


@pytest.fixture
def server(trusted: LocalCA) -> Iterator[CallbackReceiver]:
    with CallbackReceiver(trusted) as receiver:
        yield receiver


def copy_of(ca: LocalCA, path: Path) -> str:
    path.write_bytes(ca.bundle_path.read_bytes())
    return str(path)


def test_a_server_whose_ca_is_in_the_bundle_is_reached_on_new_connections_of_new_sessions(
    trusted: LocalCA, server: CallbackReceiver, tmp_path: Path
) -> None:
    bundle = copy_of(trusted, tmp_path / "bundle.pem")
    for _ in range(3):  # each session opens its own connection
        assert pooled_session(4).post(server.url, data=b"{}", verify=bundle, timeout=5).status_code == 204
    assert len(server.deliveries) == 3


def test_the_bundle_is_read_once_per_process_not_once_per_connection(
    trusted: LocalCA, server: CallbackReceiver, tmp_path: Path
) -> None:
    """The cost this module removes: urllib3 parses the bundle for every new connection (certifi's ~150 roots,
    about 20 ms of CPU each time here). Once read, a bundle that has since become unreadable is not needed again."""
    bundle = tmp_path / "bundle.pem"
    copy_of(trusted, bundle)
    assert pooled_session(4).post(server.url, data=b"{}", verify=str(bundle), timeout=5).status_code == 204
    bundle.write_text("not a certificate")
    assert pooled_session(4).post(server.url, data=b"{}", verify=str(bundle), timeout=5).status_code == 204

    plain = requests.Session()  # requests' own adapter reads the file again for its new connection, and fails
    with pytest.raises(requests.exceptions.SSLError):
        plain.post(server.url, data=b"{}", verify=str(bundle), timeout=5)


def test_a_server_outside_the_bundle_is_refused_and_its_bundle_does_not_leak_into_another(
    trusted: LocalCA, foreign: LocalCA, server: CallbackReceiver, tmp_path: Path
) -> None:
    trusting = copy_of(trusted, tmp_path / "trusted.pem")
    only_foreign = copy_of(foreign, tmp_path / "foreign.pem")
    assert pooled_session(4).post(server.url, data=b"{}", verify=trusting, timeout=5).status_code == 204
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        pooled_session(4).post(server.url, data=b"{}", verify=only_foreign, timeout=5)
    assert len(server.deliveries) == 1


def test_a_certificate_for_another_name_is_refused(trusted: LocalCA, tmp_path: Path) -> None:
    bundle = copy_of(trusted, tmp_path / "bundle.pem")
    with CallbackReceiver(trusted, names=("hooks.example.test",)) as impostor:
        with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
            pooled_session(4).post(impostor.url, data=b"{}", verify=bundle, timeout=5)
        assert impostor.deliveries == []


def test_the_azure_sdk_transport_verifies_with_the_same_shared_trust(
    trusted: LocalCA, foreign: LocalCA, server: CallbackReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDKs pass no `verify`: the bundle comes from REQUESTS_CA_BUNDLE, as for requests itself."""
    from azure.core.exceptions import ServiceRequestError
    from azure.core.rest import HttpRequest

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", copy_of(trusted, tmp_path / "trusted.pem"))
    with sdk_transport(4) as transport:
        assert transport.send(HttpRequest("POST", server.url, content=b"{}")).status_code == 204
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", copy_of(foreign, tmp_path / "foreign.pem"))
    with sdk_transport(4) as transport, pytest.raises(ServiceRequestError, match="CERTIFICATE_VERIFY_FAILED"):
        transport.send(HttpRequest("POST", server.url, content=b"{}"))
