"""The whole app on this machine: what `make run` (``python -m localrun``) and `make demo` start.

**Sandbox mode** (the default when no real ``KEY_VAULT_URL`` is configured in the environment or in
``local.settings.json``): Azurite in memory (on its default ports 10000-10002 when they are free), the sandbox
(managed identity, Key Vault over TLS, Entra ID, Partner Center, seeded with SAM credentials and the demo
customers; any other customer behaves like "eligible") in ``.run/<port>/sandbox``, a callback receiver on
``https://localhost:7072/callbacks``, and the app on ``DevHost`` with ``app_environment()`` (what Azure would give
it, with a snappy status-check schedule). ``local.settings.json`` is not read in this mode.

**Real mode** (a real ``KEY_VAULT_URL``): no sandbox. ``local.settings.json`` ``Values`` are added to the
environment (set variables win), as with Core Tools; Azurite is started only when ``AzureWebJobsStorage`` is
``UseDevelopmentStorage=true`` and nothing listens on 10000-10002 yet (then with its data in ``.run/azurite``).

With ``keys`` (``--keys FILE``) the host enforces ``authLevel`` as Azure does; without, it does not.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from devhost import DevHost, DevHostError, HostKeys
from devhost.environ import EnvironChanges
from devhost.http_front import DEFAULT_PORT
from localrun.app_hooks import check_app_settings, describe_status_check
from localrun.azurite import DEFAULT_PORTS, Azurite
from localrun.azurite_ports import port_free, start_azurite
from localrun.callback_sink import DEFAULT_CALLBACK_PORT, CallbackSink
from localrun.environment import FOREIGN_SETTINGS, LOCAL_RUN_SCHEDULE, app_environment
from localrun.run_state import reap_orphaned_azurite, run_dir_for, write_state
from localrun.storage import app_queue_service

if TYPE_CHECKING:
    from sandbox.stack import SamSeed, Sandbox

log = logging.getLogger("localrun")

Mode = Literal["auto", "sandbox", "real"]
DEVELOPMENT_STORAGE = "UseDevelopmentStorage=true"
DEFAULT_STATUS_QUEUE = "upgrade-status"
# Sandbox mode: a variable set in the shell wins over the local schedule and callback host.
FLEET_SEED = 2026  # the same fleet on every `make run ARGS="--fleet N"`
SCHEDULE_SETTINGS = ("STATUS_FIRST_CHECK_SECONDS", "STATUS_MAX_INTERVAL_SECONDS", "CALLBACK_ALLOWED_HOSTS")


def read_local_settings(app_dir: Path) -> dict[str, Any]:
    """``local.settings.json`` as a document ({} when there is none); plain-text settings only."""
    path = app_dir / "local.settings.json"
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise DevHostError(f"cannot read {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise DevHostError(f"{path}: expected a JSON object")
    if doc.get("IsEncrypted") is True:
        raise DevHostError(f"{path} is encrypted; devhost reads plain-text settings only")
    values = doc.get("Values") or {}
    if not isinstance(values, dict):
        raise DevHostError(f"{path}: 'Values' must be an object")
    return doc


def local_values(doc: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in (doc.get("Values") or {}).items() if v is not None}


def is_configured_url(value: str | None) -> bool:
    """A real https URL, not empty and not a template placeholder such as ``https://<your-vault>...``."""
    if not value or "<" in value or ">" in value:
        return False
    parts = urlsplit(value.strip())
    return parts.scheme == "https" and bool(parts.hostname)


def choose_mode(requested: Mode, environ: Mapping[str, str], values: Mapping[str, str]) -> tuple[str, str]:
    """("sandbox" | "real", why)."""
    if requested == "sandbox":
        return "sandbox", "--mode sandbox"
    if requested == "real":
        return "real", "--mode real"
    if is_configured_url(environ.get("KEY_VAULT_URL")):
        return "real", "KEY_VAULT_URL is set in the environment"
    if is_configured_url(values.get("KEY_VAULT_URL")):
        return "real", "KEY_VAULT_URL is set in local.settings.json"
    return "sandbox", "no real KEY_VAULT_URL in the environment or local.settings.json"


def seed_sandbox(sandbox: Sandbox) -> SamSeed:
    """SAM credentials and the demo customers; any other customer behaves like "eligible" (not 30 minutes)."""
    from sandbox.customers import ELIGIBLE  # noqa: PLC0415 - real mode never needs the stand-ins

    # CALLBACK_SIGNING_KEY set: callbacks are signed with it, so examples/webhook_receiver.py can verify them.
    seed = sandbox.seed_sam_credentials(callback_signing_key=os.environ.get("CALLBACK_SIGNING_KEY") or None)
    sandbox.add_demo_customers()
    sandbox.partner_center.default_customer = dataclasses.replace(ELIGIBLE, customer_id="", name="", summary="")
    return seed


@dataclass
class Timings:
    """Seconds spent on each start-up step (0 for steps not taken)."""

    azurite: float = 0.0
    sandbox: float = 0.0
    functions: float = 0.0
    total: float = 0.0


@dataclass
class LocalRun:
    """Starts and stops everything a local run needs; ``start()`` cleans up after itself when it fails."""

    app_dir: Path
    port: int = DEFAULT_PORT
    run_dir: Path | None = None  # default: <app_dir>/.run/<port>
    mode: Mode = "auto"
    verbose: bool = False
    app_logs: bool = False  # the functions' own INFO logs on the console (default: warnings and errors)
    console: bool = True
    callback_port: int = DEFAULT_CALLBACK_PORT
    storage_ports: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))  # preferred
    write_state: bool = True
    keys: HostKeys | None = None  # enforce authLevel with these keys; None: not enforced
    keys_file: Path | None = None  # where `keys` came from (recorded for `make demo`)
    fleet: int = 0  # sandbox mode: add this many generated customers (sandbox/fleet.py) for batches

    def __post_init__(self) -> None:
        self.app_dir = Path(self.app_dir).resolve()
        self.run_dir = (self.run_dir or run_dir_for(self.app_dir, self.port)).resolve()
        self.active_mode = "sandbox"
        self.reason = ""
        self.notes: list[str] = []  # things the user should know (fallback ports, ignored files)
        self.timings = Timings()
        self.azurite: Azurite | None = None
        self.sandbox: Any = None  # sandbox.stack.Sandbox (imported only in sandbox mode)
        self.callbacks: CallbackSink | None = None
        self.fleet_counts: dict[str, int] = {}  # per kind, when a fleet was added
        self.caller_key: str | None = None  # sandbox mode: a local caller key with every role (printed, in state)
        self.host: DevHost | None = None
        self.environ: dict[str, str] = {}
        self._environ_changes = EnvironChanges()
        self._cleanups: list[Callable[[], None]] = []

    # ----------------------------------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        if self.host is None:
            raise DevHostError("not started")
        return self.host.url

    def start(self) -> LocalRun:
        began = time.perf_counter()
        try:
            doc = read_local_settings(self.app_dir)
            values = local_values(doc)
            self.active_mode, self.reason = choose_mode(self.mode, os.environ, values)
            if self.write_state and self.run_dir is not None:
                reap_orphaned_azurite(self.run_dir, self.notes)
            if self.port and not port_free(self.port):
                raise DevHostError(
                    f"port {self.port} is already in use on 127.0.0.1 (another `make run` or `func start`?); "
                    f"stop it, or pick another port: make run PORT={self.port + 10}"
                )
            if self.active_mode == "sandbox":
                if doc:
                    self.notes.append("local.settings.json is not used in sandbox mode")
                self._start_sandbox_mode()
            else:
                self._start_real_mode(values)
            started = time.perf_counter()
            self.host = DevHost(
                self.app_dir,
                http_port=self.port,
                environ=self.environ,
                queue_service=app_queue_service,
                keys=self.keys,
                verbose=self.verbose,
                console=self.console,
                function_log_level=None if self.app_logs or self.verbose else logging.WARNING,
                describe_message=describe_status_check,
            )
            self.host.start()
            self._cleanups.append(self.host.stop)
            self.timings.functions = time.perf_counter() - started
            check_app_settings()
            if self.write_state:
                self._write_state()
        except BaseException:
            self.stop()
            raise
        self.timings.total = time.perf_counter() - began
        return self

    def stop(self) -> None:
        """Stop what was started, newest first: host, callback receiver, sandbox, Azurite; restore the env."""
        while self._cleanups:
            cleanup = self._cleanups.pop()
            try:
                cleanup()
            except Exception as exc:  # keep stopping the rest
                log.warning("devhost: error while stopping: %s: %s", type(exc).__name__, exc)
        self.host = None
        self._environ_changes.undo()

    def __enter__(self) -> LocalRun:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------------------------------- modes
    def _start_sandbox_mode(self) -> None:
        from sandbox.stack import Sandbox  # noqa: PLC0415 - real mode never needs the stand-ins

        assert self.run_dir is not None
        started = time.perf_counter()
        self.azurite = self._start_azurite(prefer=self.storage_ports, location=None)
        self.timings.azurite = time.perf_counter() - started

        started = time.perf_counter()
        sandbox = Sandbox(self.run_dir / "sandbox")
        sandbox.start()
        self._cleanups.append(sandbox.stop)
        self.sandbox = sandbox
        seed = seed_sandbox(sandbox)
        self.caller_key = sandbox.seed_caller_key("local")  # every role: `make demo` and requests.http use it
        if self.fleet:
            self.fleet_counts = sandbox.add_fleet(self.fleet, seed=FLEET_SEED, complete_after=20).counts()
        self.timings.sandbox = time.perf_counter() - started

        sink = CallbackSink(sandbox.ca.server_context(), seed.callback_signing_key.encode(), port=self.callback_port)
        sink.start()
        self._cleanups.append(sink.stop)
        self.callbacks = sink
        if self.callback_port and sink.port != self.callback_port:
            self.notes.append(f"port {self.callback_port} is in use: the callback receiver is on {sink.port}")

        storage = DEVELOPMENT_STORAGE if self.azurite.is_default_ports else self.azurite.connection_string
        environ = app_environment(
            sandbox, storage, schedule=LOCAL_RUN_SCHEDULE, callback_hosts=f"localhost:{sink.port}"
        )
        self.environ = environ | {name: os.environ[name] for name in SCHEDULE_SETTINGS if os.environ.get(name)}
        for name in FOREIGN_SETTINGS:
            if name in os.environ:
                self._environ_changes.remove(name)

    def _start_real_mode(self, values: Mapping[str, str]) -> None:
        assert self.run_dir is not None
        for key, value in values.items():
            if key not in os.environ:
                self._environ_changes.set(key, value)
        if not os.environ.get("UPGRADE_STATUS_QUEUE"):
            # function.json names the queue %UPGRADE_STATUS_QUEUE%; the host cannot index it without the setting.
            self._environ_changes.set("UPGRADE_STATUS_QUEUE", DEFAULT_STATUS_QUEUE)
            self.notes.append("UPGRADE_STATUS_QUEUE is not set: using its default, upgrade-status")
        storage = os.environ.get("AzureWebJobsStorage", "").strip()  # noqa: SIM112 - the name Azure uses
        if storage.replace(" ", "").lower() != DEVELOPMENT_STORAGE.lower():
            return
        ports = dict(DEFAULT_PORTS)
        busy = [name for name, port in ports.items() if not port_free(port)]
        if len(busy) == len(ports):
            self.notes.append("AzureWebJobsStorage=UseDevelopmentStorage=true: using the storage emulator already "
                              "listening on 127.0.0.1:10000-10002")  # fmt: skip
            return
        if busy:
            raise DevHostError(
                "AzureWebJobsStorage=UseDevelopmentStorage=true needs Azurite on ports 10000-10002, but "
                + ", ".join(f"{ports[b]} ({b})" for b in busy)
                + " is taken by something else"
            )
        started = time.perf_counter()
        self.azurite = self._start_azurite(
            prefer=ports, location=self.app_dir / ".run" / "azurite" / "data", fallback=False
        )
        self.timings.azurite = time.perf_counter() - started

    def _start_azurite(self, *, prefer: Mapping[str, int], location: Path | None, fallback: bool = True) -> Azurite:
        assert self.run_dir is not None
        workdir = self.run_dir / "azurite"
        azurite = start_azurite(workdir, prefer=prefer, location=location, notes=self.notes, fallback=fallback)
        self._cleanups.append(azurite.stop)
        return azurite

    def _write_state(self) -> None:
        assert self.run_dir is not None
        state = {
            "mode": self.active_mode,
            "url": self.url,
            "callbackUrl": self.callbacks.url if self.callbacks else None,
            "keysFile": str(self.keys_file.resolve()) if self.keys_file and self.keys else None,
            "callerKey": self.caller_key,  # a local sandbox key (run dir only); never a real one
            "storagePorts": self.azurite.ports if self.azurite else None,
            "azuritePid": self.azurite.pid if self.azurite else None,
            "azuriteCommand": self.azurite.command if self.azurite else None,
        }
        self._cleanups.append(write_state(self.run_dir, state))
