"""Several app instances as separate OS processes (``python -m localrun.instance``) on one Azurite and one
sandbox: what Flex Consumption scales out to, on this machine. Used by the scale-out bench and test."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from localrun.environment import FOREIGN_SETTINGS

ROOT = Path(__file__).resolve().parents[1]
READY_SECONDS = 60.0


@dataclass
class Instance:
    index: int
    process: subprocess.Popen[str]
    url: str
    log_file: Path
    killed_at: float | None = None

    @property
    def alive(self) -> bool:
        return self.killed_at is None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no clean-up, no flush, in-flight requests and messages are simply abandoned."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.killed_at = time.monotonic()

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.process.pid)

    def log(self) -> str:
        return self.log_file.read_text(encoding="utf-8", errors="replace")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_environment(settings: Mapping[str, str]) -> dict[str, str]:
    """The parent's environment without settings that would point the app elsewhere, plus the app settings."""
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN_SETTINGS}
    return env | dict(settings)


@contextmanager
def instances(
    count: int, settings: Mapping[str, str], workdir: Path, *, queue_lease: float = 600, app_logs: bool = False
) -> Iterator[list[Instance]]:
    """Start `count` instances in parallel, yield them once all serve, stop the survivors with SIGTERM."""
    env = child_environment(settings)
    started: list[Instance] = []
    try:
        pending = []
        for index in range(count):
            log_file = workdir / f"instance-{index}.log"
            command = [sys.executable, "-m", "localrun.instance", "--queue-lease", str(queue_lease)]
            with log_file.open("w") as log:
                process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
                    [*command, *(["--app-logs"] if app_logs else [])],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                )
            pending.append((index, process, log_file))
        for index, process, log_file in pending:
            started.append(Instance(index, process, _ready_url(process, log_file), log_file))
        yield started
    finally:
        for _, process, _ in pending:
            if process.poll() is None:
                process.terminate()
        for _, process, _ in pending:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _ready_url(process: subprocess.Popen[str], log_file: Path) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        readable, _, _ = select.select([process.stdout], [], [], 0.2)
        if readable:
            line = process.stdout.readline()
            if line.startswith("ready "):
                return line.split()[1]
            if not line and process.poll() is not None:
                break
    tail = log_file.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"instance did not start (exit {process.poll()}); its log ends:\n{tail}")
