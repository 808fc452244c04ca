"""The create path's write sequencing (shared/tracking/tracker.py `start`, shared/concurrency.py) and the cold-start
import boundary (shared/api/__init__.py). No timings here: `make bench` measures them (bench/README.md)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from localrun.azurite import Azurite
from shared.concurrency import run_concurrently
from support.harness import AppHarness

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = sorted(path.parent.name for path in ROOT.glob("*/function.json"))
SDKS = ("azure.core", "azure.data", "azure.storage", "azure.identity", "azure.keyvault", "requests", "urllib3", "msal")


def body(customer_id: str) -> dict[str, str]:
    return {"customerId": customer_id, "productFamily": "Azure"}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def without(service: str, azurite: Azurite) -> str:
    """Azurite's connection string with one service's endpoint on a port where nothing listens."""
    port = azurite.ports[service]
    return azurite.connection_string.replace(f":{port}/", f":{closed_port()}/")


def newly_imported(module: str) -> list[str]:
    """The modules `import <module>` loads in a new process that has azure.functions already (as the worker)."""
    probe = (
        "import json, sys; import azure.functions; before = set(sys.modules); "
        f"import {module}; print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    return list(json.loads(done.stdout))


@pytest.mark.parametrize("function", FUNCTIONS)
def test_loading_a_function_imports_nothing_and_its_first_call_no_sdk(function: str) -> None:
    """What the worker pays when it loads a function: its module alone (its `main` imports the adapter on the
    first call). What that first call then imports: the adapter and the app's light modules; SDKs and
    `requests` load when the collaborator that needs them is first built (shared/services.py)."""
    assert newly_imported(function) == [function]
    adapter = re.search(r"^\s+from (shared\.api\.\w+) import \w+", (ROOT / function / "__init__.py").read_text(), re.M)
    assert adapter, f"{function}.main imports no shared/api adapter"
    loaded = newly_imported(adapter.group(1))
    assert adapter.group(1) in loaded
    assert [name for name in loaded if name.startswith(SDKS)] == []


def test_a_table_outage_after_acceptance_still_schedules_the_first_check_which_recovers_the_record(
    app: AppHarness, azurite: Azurite, configure: Callable[..., None]
) -> None:
    configure(AzureWebJobsStorage=without("table", azurite))
    accepted = app.post(body(str(uuid.uuid4())))
    assert accepted.status == 202
    upgrade_id = accepted.json()["upgradeId"]
    scheduled = [m for m in app.scheduled() if json.loads(m.text)["upgradeId"] == upgrade_id]
    assert len(scheduled) == 1  # sent beside the record's writes, which failed

    configure(AzureWebJobsStorage=azurite.connection_string)
    assert app.get(upgrade_id).status == 404  # no record yet, and no customerId to ask Partner Center with
    app.deliver(scheduled[0])
    recovered = app.get(upgrade_id)
    assert recovered.status in (200, 202)
    assert recovered.json()["customerId"] == accepted.json()["customerId"]
    assert upgrade_id in {item["upgradeId"] for item in app.list_upgrades().json()["items"]}


def test_a_queue_outage_after_acceptance_still_records_and_lists_the_upgrade(
    app: AppHarness, azurite: Azurite, configure: Callable[..., None]
) -> None:
    configure(AzureWebJobsStorage=without("queue", azurite))
    accepted = app.post(body(str(uuid.uuid4())), headers={"Idempotency-Key": "queue-down"})
    assert accepted.status == 202
    upgrade_id = accepted.json()["upgradeId"]
    assert upgrade_id not in {json.loads(m.text)["upgradeId"] for m in app.scheduled()}

    configure(AzureWebJobsStorage=azurite.connection_string)
    assert upgrade_id in {item["upgradeId"] for item in app.list_upgrades().json()["items"]}
    replay = app.post(body(accepted.json()["customerId"]), headers={"Idempotency-Key": "queue-down"})
    assert replay.status == 202 and replay.json()["upgradeId"] == upgrade_id  # completed beside the record
    assert app.follow(accepted.header("Location") or "").status == 202


def test_run_concurrently_runs_side_by_side_and_reraises_the_first_failure_in_call_order() -> None:
    barrier = threading.Barrier(3, timeout=30)  # passes only if all three run at the same time
    threads: list[str] = []

    def meet(name: str) -> str:
        barrier.wait()
        threads.append(threading.current_thread().name)
        return name

    assert run_concurrently([lambda: meet("a"), lambda: meet("b"), lambda: meet("c")]) == ["a", "b", "c"]
    assert threading.current_thread().name in threads  # the last call ran in the caller's thread

    def fail(message: str) -> Callable[[], str]:
        def call() -> str:
            raise ValueError(message)

        return call

    with pytest.raises(ValueError, match="first"):
        run_concurrently([fail("first"), fail("second"), lambda: "fine"])
    with pytest.raises(ValueError, match="last"):
        run_concurrently([lambda: "fine", fail("last")])
