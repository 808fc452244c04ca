"""What a running `make run` records about itself, one folder per port: ``.run/<port>/``.

``.run/<port>/app.json`` holds the app's URL, the process id, the mode, the callback receiver and the Azurite it
started; ``.run/<port>/sandbox`` the sandbox's CA, ``.run/<port>/azurite`` Azurite's log. So two `make run`s of one
checkout (on different ports) never overwrite each other, and `make demo` finds the live one(s). A state file whose
process is gone is stale: `make demo` ignores it and the next run on that port stops the Azurite it left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

STATE_FILE = "app.json"


def run_dir_for(app_dir: Path, port: int) -> Path:
    return app_dir / ".run" / str(port)


def write_state(run_dir: Path, state: dict[str, Any]) -> Callable[[], None]:
    """Write ``app.json`` (with this process id); returns the function that removes it again."""
    path = run_dir / STATE_FILE
    run_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": os.getpid(), "started": time.time(), **state}, indent=2) + "\n")

    def remove() -> None:
        try:
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()
        except (OSError, ValueError):
            pass

    return remove


def read_state(run_dir: Path) -> dict[str, Any] | None:
    """What a live `make run` wrote about itself, or None (no file, or its process is gone)."""
    try:
        state = json.loads((run_dir / STATE_FILE).read_text())
        if not isinstance(state, dict) or not alive(int(state["pid"])):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state


def live_runs(app_dir: Path) -> list[dict[str, Any]]:
    """The live `make run`s of this checkout, newest first."""
    states = [read_state(path.parent) for path in (app_dir / ".run").glob(f"*/{STATE_FILE}")]
    found = [s for s in states if s is not None]
    return sorted(found, key=lambda s: float(s.get("started") or 0), reverse=True)


def reap_orphaned_azurite(run_dir: Path, notes: list[str]) -> None:
    """Stop the Azurite a previous run on this port left behind when it was killed outright (SIGKILL skips clean-up).

    Only the process recorded in the state file, only if the run that started it is gone, and only if that
    process still runs exactly the command line recorded for it.
    """
    path = run_dir / STATE_FILE
    try:
        state = json.loads(path.read_text())
        owner, pid, command = int(state["pid"]), state.get("azuritePid"), state.get("azuriteCommand")
    except (OSError, ValueError, KeyError, TypeError):
        return
    if alive(owner):
        return  # another run is live; its port check will say so
    actual = _command_line(pid) if isinstance(pid, int) and alive(pid) else None
    # The recorded command runs under its interpreter (`node <azurite> ...`): it must end the actual one.
    if isinstance(pid, int) and isinstance(command, list) and command and actual and actual[-len(command) :] == command:
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while alive(pid) and time.monotonic() < deadline:  # let it release its ports
            time.sleep(0.05)
        notes.append(f"stopped Azurite (pid {pid}) left running by a previous run that was killed")
    path.unlink(missing_ok=True)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) is not running
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _command_line(pid: int) -> list[str] | None:
    proc = Path(f"/proc/{pid}/cmdline")
    if proc.exists():
        try:
            return [part.decode() for part in proc.read_bytes().split(b"\0") if part]
        except OSError:
            return None
    try:  # macOS and other systems without /proc: one string, compared word by word
        out = subprocess.run(  # noqa: S603 - fixed arguments
            ["ps", "-ww", "-o", "command=", "-p", str(pid)],  # noqa: S607 - ps from PATH, as a shell would
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    return out.stdout.split() or None
