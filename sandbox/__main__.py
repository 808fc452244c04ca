"""`python -m sandbox [--workdir DIR] [--fleet N [--fleet-seed S]] [--throttle K] [--without-mfa]`: run a seeded
sandbox with the demo customers (and a generated fleet of N customers) until Ctrl-C.

Prints the environment as `export K=V` lines (paste them into the shell that runs the app; also unset
AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and AZURE_TENANT_ID there), a table of the demo customers, and with
`--fleet` the fleet's count per kind and one customer of each kind. `--throttle K` lets Partner Center take at
most K calls per minute; `--without-mfa` seeds SAM credentials whose tokens lack MFA (Partner Center answers
401 900421).
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TextIO

from sandbox.customers import DEMO_CUSTOMERS
from sandbox.fleet import Fleet, Kind
from sandbox.stack import Sandbox


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    with Sandbox(args.workdir.resolve()) as sandbox:
        seed = sandbox.seed_sam_credentials(mfa=not args.without_mfa)
        sandbox.add_demo_customers()
        fleet = sandbox.add_fleet(args.fleet, seed=args.fleet_seed) if args.fleet else None
        if args.throttle:
            sandbox.partner_center.throttle(calls_per_minute=args.throttle)
        out = sys.stdout
        out.write("# Sandbox environment for the app (unset AZURE_CLIENT_ID AZURE_CLIENT_SECRET AZURE_TENANT_ID)\n")
        for name, value in sandbox.environment().items():
            out.write(f"export {name}={shlex.quote(value)}\n")
        mfa = "without MFA (Partner Center answers 401 900421)" if args.without_mfa else "with MFA"
        out.write(f"\n# SAM app id {seed.app_id}, consent {mfa}; secrets are in the Key Vault stand-in\n")
        if args.throttle:
            out.write(f"# Partner Center throttle: {args.throttle} calls per minute per partner tenant\n")
        out.write("# Demo customers\n")
        out.write(f"# {'name':<18} {'customerId':<36}  behaviour\n")
        for customer in DEMO_CUSTOMERS:
            out.write(f"# {customer.name:<18} {customer.customer_id:<36}  {customer.summary}\n")
        if fleet is not None:
            _write_fleet(fleet, out)
        out.write("# Running; Ctrl-C to stop.\n")
        out.flush()
        while not stopping.wait(0.5):
            pass
    sys.stdout.write("# Sandbox stopped.\n")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox", description="Run the seeded sandbox stand-ins until Ctrl-C."
    )
    parser.add_argument("--workdir", type=Path, default=Path(".run/sandbox"), help="where the local CA lives")
    parser.add_argument("--fleet", type=int, default=0, metavar="N", help="also add N generated customers")
    parser.add_argument("--fleet-seed", type=int, default=0, metavar="S", help="seed of the fleet (default 0)")
    parser.add_argument("--throttle", type=int, default=0, metavar="K", help="Partner Center calls per minute")
    parser.add_argument("--without-mfa", action="store_true", help="seed SAM credentials without MFA")
    return parser


def _write_fleet(fleet: Fleet, out: TextIO) -> None:
    counts = ", ".join(f"{kind} {n}" for kind, n in fleet.counts().items())
    out.write(f"# Fleet of {len(fleet.customers)} (seed {fleet.seed}): {counts}\n")
    for kind in Kind:
        examples = fleet.of_kind(kind)
        if examples:
            first = examples[0]
            out.write(f"# {kind.value:<18} {first.customer_id:<36}  {first.company_name}: {first.summary}\n")


if __name__ == "__main__":
    sys.exit(main())
