"""The benchmark's world: Azurite and the sandbox on loopback, and the app's environment pointing at them."""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import azure.functions as func

from localrun.azurite import Azurite
from localrun.environment import FOREIGN_SETTINGS, app_environment
from sandbox.clock import ManualClock
from sandbox.stack import SamSeed, Sandbox
from shared.services import reset_services

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Stack:
    sandbox: Sandbox
    azurite: Azurite
    sam: SamSeed
    env: dict[str, str]
    clock: ManualClock  # real time unless a measurement freezes it

    def record_storage_wire(self) -> None:
        """Restart Azurite (same ports, empty) with its wire log, which the polling count reads; kept off while
        latency is measured because it slows every storage call."""
        self.azurite.stop()
        self.azurite.debug = True
        self.azurite.start()

    def fresh_app(self, **settings: str) -> None:
        """A new app instance (cold caches), with optional setting overrides, in this process."""
        os.environ.update(self.env | settings)
        reset_services()


CALLER: dict[str, str] = {}  # the credential every benchmark request sends: a caller key with every role


@contextmanager
def local_stack() -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="bench-") as work:
        clock = ManualClock()
        azurite = Azurite(Path(work), debug=False).start()
        try:
            with Sandbox(Path(work) / "sandbox", clock=clock) as sandbox:
                sam = sandbox.seed_sam_credentials()
                CALLER["X-Caller-Key"] = sandbox.seed_caller_key("bench")
                for name in FOREIGN_SETTINGS:
                    os.environ.pop(name, None)
                env = app_environment(
                    sandbox, azurite.connection_string, status_queue="bench-status", upgrades_table="benchupgrades"
                )
                yield Stack(sandbox, azurite, sam, env, clock)
        finally:
            azurite.stop()


def create_request(customer_id: str | None = None, *, key: str | None = None) -> func.HttpRequest:
    body = {"customerId": customer_id or str(uuid.uuid4()), "productFamily": "Azure"}
    headers = {"Content-Type": "application/json", **CALLER} | ({"Idempotency-Key": key} if key else {})
    return func.HttpRequest(
        "POST", "https://bench.example/api/upgrades", headers=headers, body=json.dumps(body).encode()
    )
