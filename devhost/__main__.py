"""``python -m devhost [--app-dir .] [--port 7071]``: serve the app with the current environment.

Like ``func start``: ``local.settings.json`` ``Values`` (if the file exists) are added to the environment
without overriding variables that are already set, and ``Host.LocalHttpPort`` is the default port.
Storage (Azurite) and the outside world (sandbox) must already be reachable through those settings.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from devhost.app_host import DevHost
from devhost.errors import DevHostError, FunctionLoadError
from devhost.http_front import DEFAULT_PORT


def load_local_settings(app_dir: Path) -> dict[str, Any]:
    """Apply ``local.settings.json`` ``Values`` to ``os.environ`` (set variables win); return the document."""
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
    for key, value in (doc.get("Values") or {}).items():
        if value is not None:
            os.environ.setdefault(str(key), str(value))
    return doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devhost", description=__doc__.splitlines()[0])
    parser.add_argument("--app-dir", type=Path, default=Path(), help="function app folder (default: .)")
    parser.add_argument("--port", type=int, default=None, help=f"HTTP port (default: {DEFAULT_PORT})")
    parser.add_argument("--verbose", action="store_true", help="worker logs and stack traces on the console")
    args = parser.parse_args(argv)

    try:
        settings = load_local_settings(args.app_dir)
        port = args.port
        if port is None:
            port = int((settings.get("Host") or {}).get("LocalHttpPort", DEFAULT_PORT))
        host = DevHost(args.app_dir, http_port=port, verbose=args.verbose)
        host.start()
    except FunctionLoadError as exc:
        print(f"devhost: {exc}", file=sys.stderr)
        if args.verbose and exc.stack_trace:
            print(exc.stack_trace, file=sys.stderr)
        return 1
    except DevHostError as exc:
        print(f"devhost: {exc}", file=sys.stderr)
        return 1

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    print(f"devhost: serving {host.app_dir} on {host.url} (Ctrl+C to stop)", file=sys.stderr, flush=True)
    try:
        stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)  # a second Ctrl+C ends a stop that hangs in a function
        host.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
