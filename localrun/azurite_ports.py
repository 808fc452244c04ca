"""Azurite for a local run, on the ports the run prefers when they are free, else on free ones.

Kept apart from `localrun.local_run` because the port fallback and its notes to the user are the fiddly part
of starting Azurite, and `LocalRun` only needs the started emulator.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from pathlib import Path

from devhost import DevHostError
from localrun.azurite import Azurite


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Nothing listens on host:port (a quick bind test; the real bind can still lose a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def start_azurite(
    workdir: Path, *, prefer: Mapping[str, int], location: Path | None, notes: list[str], fallback: bool = True
) -> Azurite:
    """Azurite on `prefer` (service -> port), or with `fallback` on free ports when those are taken or it cannot
    bind them; each fallback adds a line to `notes`. `location` None: in memory."""
    preferred = dict(prefer)
    busy = [p for p in preferred.values() if p and not port_free(p)]
    ports: dict[str, int] | None = preferred if preferred and not busy else None
    if busy and not fallback:
        raise DevHostError(f"Azurite's ports {', '.join(map(str, busy))} are in use")
    if busy:
        notes.append(
            f"port {', '.join(map(str, busy))} (of Azurite's defaults 10000-10002) is in use, maybe by another "
            "Azurite: this one runs on free ports, so UseDevelopmentStorage=true and Storage Explorer's "
            "emulator connection do not reach it"
        )
    azurite = Azurite(workdir, ports=ports, debug=False, location=location)
    try:
        azurite.start()
    except RuntimeError as exc:
        if ports is None or not fallback:
            raise DevHostError(f"Azurite did not start ({_last_line(str(exc))}); log: {azurite.log_file}") from None
        notes.append("Azurite could not use its default ports; using free ports")
        azurite = Azurite(workdir, debug=False, location=location)
        try:
            azurite.start()
        except RuntimeError as again:
            raise DevHostError(f"Azurite did not start ({_last_line(str(again))}); log: {azurite.log_file}") from None
    return azurite


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
