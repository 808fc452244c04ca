"""localrun: the app's local stack around devhost (`make run`, `make demo`), in its cheap parts.

The whole stack running (Azurite + sandbox + functions) is exercised by `make run` itself and by
tests/test_e2e_devhost.py; these tests pin what the stack adds: the port-in-use message, the per-port run state
that `make demo` reads, the sandbox's default customer and the app's queue-client factory.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.identity import ManagedIdentityCredential

from devhost import ConfigError, DevHostError
from localrun.demo import Target, find_app
from localrun.local_run import LocalRun, seed_sandbox
from localrun.run_state import live_runs, run_dir_for, write_state
from localrun.storage import app_queue_service
from sandbox.customers import ELIGIBLE
from sandbox.stack import Sandbox

ROOT = Path(__file__).resolve().parents[1]


def demo_args(**values: object) -> argparse.Namespace:
    return argparse.Namespace(**({"base_url": None, "port": None, "key": None, "caller_key": None} | values))


def test_port_in_use_says_how_to_pick_another(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        stack = LocalRun(ROOT, port=port, run_dir=tmp_path, mode="sandbox", console=False, write_state=False)
        with pytest.raises(DevHostError, match=rf"port {port} is already in use .*make run PORT={port + 10}"):
            stack.start()
    assert stack.azurite is None and stack.sandbox is None  # nothing was started


def test_each_port_has_its_own_run_state_and_demo_finds_the_live_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"host": {"default": "k-7081"}}))
    write_state(run_dir_for(tmp_path, 7081), {"mode": "sandbox", "url": "http://127.0.0.1:7081", "keysFile": str(keys)})
    write_state(run_dir_for(tmp_path, 7082), {"mode": "sandbox", "url": "http://127.0.0.1:7082"})
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    stale = run_dir_for(tmp_path, 7071) / "app.json"  # a `make run` that was killed: its process is gone
    stale.parent.mkdir(parents=True)
    stale.write_text(json.dumps({"pid": int(finished.stdout), "mode": "sandbox", "url": "http://127.0.0.1:7071"}))
    monkeypatch.chdir(tmp_path)

    assert {r["url"] for r in live_runs(tmp_path)} == {"http://127.0.0.1:7081", "http://127.0.0.1:7082"}
    assert find_app(demo_args(port=7081)) == Target("http://127.0.0.1:7081", key="k-7081")
    assert find_app(demo_args(port=7082)) == Target("http://127.0.0.1:7082")
    assert find_app(demo_args(port=7071)) == 1  # stale: not used
    assert live_runs(tmp_path)[0]["pid"] == os.getpid()


@pytest.fixture
def default_customer(sandbox: Sandbox) -> Iterator[Sandbox]:
    saved = sandbox.partner_center.default_customer
    yield sandbox
    sandbox.partner_center.default_customer = saved  # the session's sandbox is shared by other tests


def test_in_the_local_sandbox_any_other_customer_behaves_like_eligible(default_customer: Sandbox) -> None:
    seed_sandbox(default_customer)
    unknown = default_customer.partner_center.customer("0f0f0f0f-0000-4000-8000-00000000abcd")
    assert (unknown.eligible, unknown.progression) == (True, ELIGIBLE.progression)


def test_queue_client_factory_resolves_identity_based_storage_as_the_app_does() -> None:
    settings = {
        "KEY_VAULT_URL": "https://vault.example.test",
        "PARTNER_TENANT_ID": "contoso.onmicrosoft.com",
        "AzureWebJobsStorage__queueServiceUri": "https://acct.queue.core.windows.net",
        "AzureWebJobsStorage__tableServiceUri": "https://acct.table.core.windows.net",
        "AzureWebJobsStorage__credential": "managedidentity",
        "AzureWebJobsStorage__clientId": "00000000-0000-0000-0000-000000000001",
        "CALLER_API_AUDIENCE": "7d0c7a41-3b9f-4a52-9c1e-6f2d8b4a1c30",
    }
    client = app_queue_service("AzureWebJobsStorage", settings)
    assert client.url.startswith("https://acct.queue.core.windows.net")
    assert isinstance(client.credential, ManagedIdentityCredential)
    with pytest.raises(ConfigError, match="AzureWebJobsStorage is required"):
        app_queue_service("AzureWebJobsStorage", {k: v for k, v in settings.items() if "Storage" not in k})
    with pytest.raises(ConfigError, match="use AzureWebJobsStorage"):
        app_queue_service("OtherStorage", settings)
