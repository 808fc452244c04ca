"""docs/webhooks.md's receiver (examples/webhook_receiver.py) against real callbacks from the app.

The example runs unchanged behind TLS from the sandbox CA on https://localhost:<port>; the app tracks real
upgrades through Azurite and the sandbox and delivers its signed callbacks to it.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from sandbox.clock import ManualClock
from sandbox.partner_center import Customer, Step
from sandbox.stack import SamSeed, Sandbox
from support.harness import AppHarness

ROOT = Path(__file__).resolve().parents[1]


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("webhook_receiver", ROOT / "examples" / "webhook_receiver.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def serve(sandbox: Sandbox, configure: Callable[..., None]) -> Iterator[Callable[..., str]]:
    """Start the example receiver over TLS; returns its callback URL."""
    example = load_example()
    servers: list[ThreadingHTTPServer] = []

    def start(signing_key: bytes, on_event: Callable[[dict[str, Any]], None], **options: Any) -> str:
        server = example.make_server("127.0.0.1", 0, signing_key, on_event, **options)
        server.socket = sandbox.ca.server_context().wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        allowed = ",".join(f"localhost:{s.server_address[1]}" for s in servers)  # not 443: each port is listed
        configure(STATUS_FIRST_CHECK_SECONDS="1", STATUS_MAX_INTERVAL_SECONDS="1", CALLBACK_ALLOWED_HOSTS=allowed)
        return f"https://localhost:{server.server_address[1]}/upgrade-events"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def track(
    app: AppHarness, sandbox: Sandbox, clock: ManualClock, callback_url: str, until: Callable[[dict[str, Any]], bool]
) -> str:
    """Submit an upgrade that completes at once and run the app's queues (virtual time) until they drain: the
    status check, then each callback attempt and its retries, all through the real Azurite queue."""
    customer = str(uuid.uuid4())
    sandbox.partner_center.add_customer(Customer(customer, progression=[Step(0, "Completed")]))
    answer = app.post({"customerId": customer, "productFamily": "Azure", "callbackUrl": callback_url})
    assert answer.status == 202
    upgrade_id = answer.json()["upgradeId"]
    app.virtual_queues(clock).run()
    record = app.get(upgrade_id, customer).json()
    assert until(record), f"callback of {upgrade_id} did not reach the expected state: {record['callback']}"
    return str(upgrade_id)


def test_the_example_receiver_accepts_the_apps_signed_callback_once(
    app: AppHarness, sandbox: Sandbox, sam: SamSeed, serve: Callable[..., str], virtual_clock: ManualClock
) -> None:
    events: list[dict[str, Any]] = []
    url = serve(sam.callback_signing_key.encode(), events.append)

    upgrade_id = track(app, sandbox, virtual_clock, url, lambda r: r["callback"]["state"] == "delivered")

    assert [(e["upgradeId"], e["status"]) for e in events] == [(upgrade_id, "Completed")]


def test_the_example_receiver_refuses_callbacks_signed_with_another_key(
    app: AppHarness, sandbox: Sandbox, serve: Callable[..., str], virtual_clock: ManualClock
) -> None:
    events: list[dict[str, Any]] = []
    url = serve(b"not-the-key-in-key-vault", events.append)

    track(app, sandbox, virtual_clock, url, lambda r: r["callback"]["attempts"] >= 2)

    assert events == []


def test_the_example_receiver_refuses_stale_timestamps(
    app: AppHarness, sandbox: Sandbox, sam: SamSeed, serve: Callable[..., str], virtual_clock: ManualClock
) -> None:
    events: list[dict[str, Any]] = []
    ten_minutes_ahead = lambda: time.time() + 600  # noqa: E731 - the receiver's clock, skewed
    url = serve(sam.callback_signing_key.encode(), events.append, clock=ten_minutes_ahead)

    track(app, sandbox, virtual_clock, url, lambda r: r["callback"]["attempts"] >= 2)

    assert events == []
