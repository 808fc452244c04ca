"""`python -m sandbox [--workdir DIR]`: run a seeded sandbox with the demo customers until Ctrl-C.

Prints the environment as `export K=V` lines (paste them into the shell that runs the app; also unset
AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and AZURE_TENANT_ID there) and a table of the demo customers.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from sandbox.customers import DEMO_CUSTOMERS
from sandbox.stack import Sandbox


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox", description="Run the seeded sandbox stand-ins until Ctrl-C."
    )
    parser.add_argument("--workdir", type=Path, default=Path(".run/sandbox"), help="where the local CA lives")
    args = parser.parse_args(argv)

    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    with Sandbox(args.workdir.resolve()) as sandbox:
        seed = sandbox.seed_sam_credentials()
        sandbox.add_demo_customers()
        out = sys.stdout
        out.write("# Sandbox environment for the app (unset AZURE_CLIENT_ID AZURE_CLIENT_SECRET AZURE_TENANT_ID)\n")
        for name, value in sandbox.environment().items():
            out.write(f"export {name}={shlex.quote(value)}\n")
        out.write(f"\n# SAM app id {seed.app_id}; secrets are in the Key Vault stand-in\n")
        out.write("# Demo customers\n")
        out.write(f"# {'name':<18} {'customerId':<36}  behaviour\n")
        for customer in DEMO_CUSTOMERS:
            out.write(f"# {customer.name:<18} {customer.customer_id:<36}  {customer.summary}\n")
        out.write("# Running; Ctrl-C to stop.\n")
        out.flush()
        while not stopping.wait(0.5):
            pass
    sys.stdout.write("# Sandbox stopped.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
