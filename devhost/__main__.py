"""``python -m devhost`` (`make run`): the app on http://127.0.0.1:7071 with everything it needs, until Ctrl-C.

Sandbox mode (default, when no real ``KEY_VAULT_URL`` is configured): Azurite + the sandbox stand-ins +
the app. Real mode (a real ``KEY_VAULT_URL`` in the environment or ``local.settings.json``): the app with
those settings, plus Azurite when ``AzureWebJobsStorage`` is ``UseDevelopmentStorage=true``.
See docs/local-development.md.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import NoReturn

from devhost.errors import DevHostError, FunctionLoadError
from devhost.http_front import DEFAULT_PORT
from devhost.local_run import LocalStack, Mode

DEMO_CUSTOMER = "eligible"
# Ctrl-C, kill, and the terminal closing: all stop everything cleanly (Azurite runs in its own session).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def main(argv: list[str] | None = None) -> int:
    began = time.perf_counter()
    parser = argparse.ArgumentParser(
        prog="python -m devhost",
        description="Run the app on http://127.0.0.1:7071 with everything it needs (make run), until Ctrl-C.",
        epilog="Details: docs/local-development.md",
    )
    parser.add_argument("--app-dir", type=Path, default=Path(), help="function app folder (default: .)")
    parser.add_argument("--port", type=int, default=None, help=f"HTTP port (default: {DEFAULT_PORT})")
    parser.add_argument(
        "--mode",
        choices=("auto", "sandbox", "real"),
        default="auto",
        help="auto (default): real when a real KEY_VAULT_URL is configured, else sandbox",
    )
    parser.add_argument("--app-logs", action="store_true", help="the functions' INFO logs too (default: warnings)")
    parser.add_argument("--verbose", action="store_true", help="worker logs and stack traces on the console")
    args = parser.parse_args(argv)
    mode: Mode = args.mode

    for signum in STOP_SIGNALS[1:]:
        signal.signal(signum, _interrupt)  # during start-up, these abort it like Ctrl-C does
    stack = LocalStack(
        args.app_dir,
        port=args.port if args.port is not None else _local_port(args.app_dir),
        mode=mode,
        verbose=args.verbose,
        app_logs=args.app_logs,
    )
    try:
        stack.start()
    except KeyboardInterrupt:
        print("devhost: start-up interrupted; everything it had started is stopped", file=sys.stderr)
        return 130
    except FunctionLoadError as exc:
        print(f"devhost: the app did not load. {exc}", file=sys.stderr)
        if args.verbose and exc.stack_trace:
            print(exc.stack_trace, file=sys.stderr)
        return 1
    except DevHostError as exc:
        print(f"devhost: cannot start: {exc}", file=sys.stderr)
        return 1

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
        print(f"devhost: {ready_line(stack, time.perf_counter() - began)}", file=sys.stderr, flush=True)
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        for signum in STOP_SIGNALS:
            signal.signal(signum, force)
        print("devhost: stopping (Ctrl-C again to force)", file=sys.stderr, flush=True)
        stack.stop()
        print("devhost: stopped; nothing left running", file=sys.stderr, flush=True)
    return 0


def banner(stack: LocalStack) -> str:
    url = stack.url
    lines = ["", f"Partner Center Upgrade Functions, running locally in {stack.active_mode} mode ({stack.reason})"]
    lines += [
        f"  POST {url}/api/upgrades              submit an upgrade (202 + Location)",
        f"  GET  {url}/api/upgrades/{{upgradeId}}  its status: follow the Location you got",
    ]
    if stack.active_mode == "real":
        settings = ("KEY_VAULT_URL", "PARTNER_TENANT_ID", "PARTNER_CENTER_BASE_URL")
        lines.append("  Settings: " + ", ".join(f"{name}={os.environ.get(name, '(default)')}" for name in settings))
        lines.append("  Upgrades submitted here are REAL: they go to the Partner Center configured above.")
    if stack.azurite is not None:
        p = stack.azurite.ports
        kind = "in memory" if stack.azurite.location is None else f"data in {stack.azurite.location}"
        lines.append(f"  Storage: Azurite ({kind}) blob {p['blob']}, queue {p['queue']}, table {p['table']}")
    if stack.sandbox is not None:
        from sandbox.customers import DEMO_CUSTOMERS  # noqa: PLC0415 - sandbox mode only

        sandbox = stack.sandbox
        lines.append(
            f"  Sandbox: Partner Center {sandbox.partner_center.url}, Entra ID {sandbox.entra.url}, "
            f"Key Vault {sandbox.key_vault.url}"
        )
        if stack.callbacks is not None:
            lines.append(f"  Callbacks: {stack.callbacks.url} (allowed host: localhost; prints each delivery)")
        lines += ["", "  Demo customers (sandbox Partner Center):"]
        lines += [f"    {c.name:<18} {c.customer_id}  {c.summary}" for c in DEMO_CUSTOMERS]
        eligible = next(c for c in DEMO_CUSTOMERS if c.name == DEMO_CUSTOMER)
        body = f'{{"customerId": "{eligible.customer_id}", "productFamily": "Azure"}}'
        lines += [
            "",
            "  Try it (or `make demo` in another terminal; requests.http has every call):",
            f"    curl -i {url}/api/upgrades -H 'Content-Type: application/json' -H 'Idempotency-Key: try-1' \\",
            f"         -d {shlex.quote(body)}",
        ]
    lines += [f"  Note: {note}" for note in stack.notes]
    lines.append("")
    return "\n".join(lines)


def ready_line(stack: LocalStack, seconds: float) -> str:
    t = stack.timings
    steps = [f"Azurite {t.azurite:.2f} s"] if stack.azurite is not None else []
    steps += [f"sandbox {t.sandbox:.2f} s"] if stack.sandbox is not None else []
    steps.append(f"functions {t.functions:.2f} s")
    return f"ready in {seconds:.1f} s ({', '.join(steps)}) on {stack.url}; press Ctrl-C to stop"


def _local_port(app_dir: Path) -> int:
    """``Host.LocalHttpPort`` from local.settings.json, as Core Tools reads it (default 7071)."""
    from devhost.local_run import read_local_settings  # noqa: PLC0415

    try:
        host = read_local_settings(app_dir).get("Host") or {}
        return int(host.get("LocalHttpPort", DEFAULT_PORT))
    except (DevHostError, ValueError, TypeError, AttributeError):
        return DEFAULT_PORT


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
