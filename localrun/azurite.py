"""Azurite (the Azure Storage emulator, pinned in package-lock.json) as a managed child process.

Used by `make run` and by the tests. Started on loopback ports (free ones unless given), in memory unless a
`location` is given, and by default with `--debug`, whose log records every request on the wire: tests read the
`visibilitytimeout` and text of each Put Message from it, which is how the delay the app set on a hidden
message can be checked without waiting. `make run` turns that log off (`debug=False`): it grows with every
request, and a long local session makes a lot of them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient

from localrun.wire_log import PutMessage, WireLog

ROOT = Path(__file__).resolve().parents[1]
AZURITE_BIN = ROOT / "node_modules" / ".bin" / "azurite"
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="  # public dev key
_READY = re.compile(r"Azurite (Blob|Queue|Table) service is successfully listening at https?://127\.0\.0\.1:(\d+)")


# Azurite's own defaults, which `UseDevelopmentStorage=true` and Azure Storage Explorer expect.
DEFAULT_PORTS = {"blob": 10000, "queue": 10001, "table": 10002}


class Azurite:
    def __init__(
        self,
        workdir: Path,
        extra_args: tuple[str, ...] = (),
        ports: dict[str, int] | None = None,
        *,
        debug: bool = True,
        location: Path | None = None,
    ) -> None:
        self.workdir = workdir
        self.extra_args = extra_args
        self.debug_log = workdir / "azurite-debug.log"
        self.log_file = workdir / "azurite.log"
        self.debug = debug
        self.location = location  # None: in memory (empty at every start)
        self.ports: dict[str, int] = dict(ports or {})
        self.command: list[str] = []  # of the last start
        self._process: subprocess.Popen[bytes] | None = None
        self._wire = WireLog(self.debug_log)

    @property
    def pid(self) -> int | None:
        """The process id while running (Azurite runs in its own process group, led by this process)."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    @property
    def is_default_ports(self) -> bool:
        return self.ports == DEFAULT_PORTS

    @property
    def connection_string(self) -> str:
        p = self.ports
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint=http://127.0.0.1:{p['blob']}/{ACCOUNT};"
            f"QueueEndpoint=http://127.0.0.1:{p['queue']}/{ACCOUNT};"
            f"TableEndpoint=http://127.0.0.1:{p['table']}/{ACCOUNT};"
        )

    def start(self) -> Azurite:
        """Start; after a stop() it comes back on the same ports (with empty storage)."""
        if not AZURITE_BIN.exists():
            raise RuntimeError("Azurite is not installed: run `make deps` (npm ci)")
        ports = self.ports or {"blob": 0, "queue": 0, "table": 0}
        log = self.log_file
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._wire = WireLog(self.debug_log)  # read from the start again: a restarted Azurite may begin a new log
        if self.location is None:
            storage = ["--inMemoryPersistence", "--extentMemoryLimit", "64"]
        else:
            self.location.mkdir(parents=True, exist_ok=True)
            storage = ["--location", str(self.location)]
        command = [
            str(AZURITE_BIN), "--silent", *storage,
            "--blobHost", "127.0.0.1", "--queueHost", "127.0.0.1", "--tableHost", "127.0.0.1",
            "--blobPort", str(ports["blob"]), "--queuePort", str(ports["queue"]), "--tablePort", str(ports["table"]),
            "--skipApiVersionCheck", "--disableTelemetry",
            *(["--debug", str(self.debug_log)] if self.debug else []), *self.extra_args,
        ]  # fmt: skip
        with open(log, "w") as out:  # a file, not a pipe: an undrained pipe can block Azurite
            self._process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.command = command
        deadline = time.monotonic() + 30
        found: dict[str, int] = {}
        while len(found) < 3:
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("Azurite did not start:\n" + log.read_text())
            found = {m.group(1).lower(): int(m.group(2)) for m in _READY.finditer(log.read_text())}
            time.sleep(0.02)
        self.ports = found
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def put_messages(self, queue: str, wait_seconds: float = 5.0) -> list[PutMessage]:
        """Every message put on `queue` so far (and accepted), in order, with the visibility delay it was given.

        Azurite writes its wire log asynchronously, so a Put it has already answered may not be in the file yet.
        The queue's message count (hidden messages included) comes from Azurite at once: wait, at most
        `wait_seconds`, until the log lists at least as many Puts as the queue holds messages.
        """
        queue_client = QueueClient.from_connection_string(self.connection_string, queue)
        deadline = time.monotonic() + wait_seconds
        while True:
            found = self._logged_puts(queue)
            try:
                held = queue_client.get_queue_properties().approximate_message_count or 0
            except ResourceNotFoundError:
                held = 0
            if len(found) >= held or time.monotonic() > deadline:
                return found
            time.sleep(0.02)

    def _logged_puts(self, queue: str) -> list[PutMessage]:
        return self._wire.puts(queue)
