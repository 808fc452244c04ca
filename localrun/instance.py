"""One more instance of the app, for scale-out runs: ``python -m localrun.instance --port P``.

Starts ``DevHost`` for the app folder with the app settings already in the process environment (what the
caller built with ``localrun.environment.app_environment`` for a shared Azurite and sandbox, including the
sandbox's CA bundle in ``REQUESTS_CA_BUNDLE``/``SSL_CERT_FILE``), prints ``ready <url>`` on stdout once it
serves, and runs until SIGTERM or SIGINT. Several of these on one Azurite are what Flex Consumption's instances
are on one storage account: they share the status queue and the table and nothing else. ``--queue-lease`` is
the queue message lease (default 600 s, as in Azure), shorter when a run kills an instance and wants its
in-flight messages back sooner; ``--app-logs`` puts the functions' INFO logs on stderr.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from devhost import DevHost
from devhost.queue_poller import RECEIVE_VISIBILITY_TIMEOUT
from localrun.app_hooks import describe_status_check
from localrun.storage import app_queue_service

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localrun.instance", description=__doc__.splitlines()[0])
    parser.add_argument("--app-dir", type=Path, default=ROOT, help="function app folder (default: this checkout)")
    parser.add_argument("--port", type=int, default=0, help="HTTP port (default: a free one)")
    parser.add_argument("--queue-lease", type=float, default=RECEIVE_VISIBILITY_TIMEOUT, help="seconds")
    parser.add_argument("--app-logs", action="store_true", help="the functions' INFO logs (default: warnings)")
    args = parser.parse_args(argv)

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, request_stop)
    host = DevHost(
        args.app_dir,
        http_port=args.port,
        queue_service=app_queue_service,
        console=True,
        function_log_level=None if args.app_logs else logging.WARNING,
        describe_message=describe_status_check,
        queue_lease_seconds=args.queue_lease,
    )
    host.start()
    try:
        print(f"ready {host.url}", flush=True)
        stop.wait()
    finally:
        host.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
