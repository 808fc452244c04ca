"""``python -m localrun`` (`make run`): the app on http://127.0.0.1:7071 with everything it needs, until Ctrl-C.

Sandbox mode (default, when no real ``KEY_VAULT_URL`` is configured): Azurite + the sandbox stand-ins +
the app. Real mode (a real ``KEY_VAULT_URL`` in the environment or ``local.settings.json``): the app with
those settings, plus Azurite when ``AzureWebJobsStorage`` is ``UseDevelopmentStorage=true``.
``--port`` (`make run PORT=7081`) picks the port; ``--keys FILE`` (`make run KEYS=keys.json`) enforces
``authLevel`` with those keys. See docs/local-development.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import NoReturn

from devhost import DevHostError, FunctionLoadError, HostKeys
from devhost.http_front import DEFAULT_PORT
from localrun.banner import banner, ready_line
from localrun.local_run import LocalRun, Mode, read_local_settings

# Ctrl-C, kill, and the terminal closing: all stop everything cleanly (Azurite runs in its own session).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def main(argv: list[str] | None = None) -> int:
    began = time.perf_counter()
    args = _parser().parse_args(argv)
    mode: Mode = args.mode

    for signum in STOP_SIGNALS[1:]:
        signal.signal(signum, _interrupt)  # during start-up, these abort it like Ctrl-C does
    try:
        keys = HostKeys.load(args.keys) if args.keys is not None else None
    except DevHostError as exc:
        print(f"localrun: cannot start: {exc}", file=sys.stderr)
        return 1
    stack = LocalRun(
        args.app_dir,
        port=args.port if args.port is not None else _local_port(args.app_dir),
        mode=mode,
        verbose=args.verbose,
        app_logs=args.app_logs,
        keys=keys,
        keys_file=args.keys,
        fleet=max(0, args.fleet),
    )
    exit_code = _start(stack, verbose=args.verbose)
    if exit_code is not None:
        return exit_code
    _serve_until_stopped(stack, began)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m localrun",
        description="Run the app on http://127.0.0.1:7071 with everything it needs (make run), until Ctrl-C.",
        epilog="Details: docs/local-development.md",
    )
    parser.add_argument("--app-dir", type=Path, default=Path(), help="function app folder (default: .)")
    parser.add_argument("--port", type=int, default=None, help=f"HTTP port (default: {DEFAULT_PORT})")
    parser.add_argument(
        "--keys",
        type=Path,
        default=None,
        help='enforce authLevel with the keys in this JSON file: {"host": {"default": "..."}, '
        '"functions": {"CreateUpgrade": {"default": "..."}}} (default: keys are not enforced)',
    )
    parser.add_argument(
        "--mode",
        choices=("auto", "sandbox", "real"),
        default="auto",
        help="auto (default): real when a real KEY_VAULT_URL is configured, else sandbox",
    )
    parser.add_argument(
        "--fleet",
        type=int,
        default=0,
        metavar="N",
        help="sandbox mode: add N generated customers with a realistic mix, for batches (make demo ARGS=--fleet)",
    )
    parser.add_argument("--app-logs", action="store_true", help="the functions' INFO logs too (default: warnings)")
    parser.add_argument("--verbose", action="store_true", help="worker logs and stack traces on the console")
    return parser


def _start(stack: LocalRun, *, verbose: bool) -> int | None:
    """None once everything runs; else the exit code, after saying why on stderr (`start()` has cleaned up)."""
    try:
        stack.start()
    except KeyboardInterrupt:
        print("localrun: start-up interrupted; everything it had started is stopped", file=sys.stderr)
        return 130
    except FunctionLoadError as exc:
        print(f"localrun: the app did not load. {exc}", file=sys.stderr)
        if verbose and exc.stack_trace:
            print(exc.stack_trace, file=sys.stderr)
        return 1
    except DevHostError as exc:
        print(f"localrun: cannot start: {exc}", file=sys.stderr)
        return 1
    return None


def _serve_until_stopped(stack: LocalRun, began: float) -> None:
    """Print the banner, wait for a stop signal, then stop everything (a second signal forces the exit)."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    def force(signum: int, frame: FrameType | None) -> NoReturn:
        # A second Ctrl-C while something hangs: end Azurite (its own process group) and leave now.
        if stack.azurite is not None and stack.azurite.pid is not None:
            os.killpg(stack.azurite.pid, signal.SIGKILL)
        os._exit(130)

    try:
        for signum in STOP_SIGNALS:
            signal.signal(signum, request_stop)
        print(banner(stack), flush=True)
        print(f"localrun: {ready_line(stack, time.perf_counter() - began)}", file=sys.stderr, flush=True)
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        for signum in STOP_SIGNALS:
            signal.signal(signum, force)
        print("localrun: stopping (Ctrl-C again to force)", file=sys.stderr, flush=True)
        stack.stop()
        print("localrun: stopped; nothing left running", file=sys.stderr, flush=True)


def _local_port(app_dir: Path) -> int:
    """``Host.LocalHttpPort`` from local.settings.json, as Core Tools reads it (default 7071)."""
    try:
        host = read_local_settings(app_dir).get("Host") or {}
        return int(host.get("LocalHttpPort", DEFAULT_PORT))
    except (DevHostError, ValueError, TypeError, AttributeError):
        return DEFAULT_PORT


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
