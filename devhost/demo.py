"""``python -m devhost.demo`` (`make demo`): submit a sandbox upgrade and follow it to its final state.

Uses the app on http://127.0.0.1:7071 when it answers (`make run` in another terminal); otherwise starts the
same stack as `make run` (Azurite, the sandbox, the functions, on free ports) for the length of the demo.
Exits 0 when every upgrade ended the way its sandbox customer should, 1 otherwise.

    python -m devhost.demo                          # the "eligible" customer
    python -m devhost.demo --customer failing       # one whose line item fails
    python -m devhost.demo --customer eligible --customer not-eligible
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import NoReturn
from urllib.parse import urlsplit

import requests

from devhost.errors import DevHostError
from devhost.http_front import DEFAULT_PORT
from devhost.local_run import LocalStack, read_state
from sandbox.customers import DEMO_CUSTOMERS
from shared.partner_center.outbound import json_object

DEFAULT_BASE_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
DEFAULT_MAX_WAIT = 3.0
DEFAULT_TIMEOUT = 180.0


@dataclass(frozen=True)
class Expected:
    submit_status: int
    final_status: str | None  # None: refused at submission


# How each sandbox customer (sandbox/customers.py) must end.
EXPECTED = {
    "eligible": Expected(202, "Completed"),
    "already-upgrading": Expected(202, "Completed"),
    "slow": Expected(202, "Completed"),
    "failing": Expected(202, "Failed"),
    "not-eligible": Expected(422, None),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devhost.demo",
        description="Submit a sandbox upgrade (make demo) and follow it to its final state.",
        epilog="Uses the app on 127.0.0.1:7071 when it answers, else starts one for the demo.",
    )
    parser.add_argument(
        "--customer",
        action="append",
        choices=[c.name for c in DEMO_CUSTOMERS],
        help="sandbox customer to upgrade; repeat for several (default: eligible)",
    )
    parser.add_argument("--base-url", default=None, help=f"the app (default: {DEFAULT_BASE_URL})")
    parser.add_argument(
        "--max-wait",
        type=float,
        default=DEFAULT_MAX_WAIT,
        help=f"longest wait between polls, whatever Retry-After says (default: {DEFAULT_MAX_WAIT:g} s)",
    )
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="give up after this many seconds")
    parser.add_argument("--host-logs", action="store_true", help="show the host's console when the demo starts it")
    parser.add_argument(
        "--callback",
        action="store_true",
        help="also ask for a callback to the local receiver (https://localhost:7072/callbacks with `make run`)",
    )
    args = parser.parse_args(argv)
    customers: list[str] = args.customer or ["eligible"]

    signal.signal(signal.SIGTERM, _interrupt)
    session = requests.Session()
    base_url = (args.base_url or DEFAULT_BASE_URL).rstrip("/")
    session.trust_env = not _is_loopback(base_url)  # no proxy between us and a local app
    stack: LocalStack | None = None
    callback_url: str | None = None
    try:
        if _answers(base_url):
            state = read_state(Path(".run"))
            if state and state.get("url") == base_url and state.get("mode") != "sandbox":
                print(f"The app on {base_url} runs in {state.get('mode')} mode, against real Partner Center;")
                print("the demo only submits sandbox customers. Stop it, or run `make run` in sandbox mode.")
                return 2
            ours = bool(state and state.get("url") == base_url)
            print(f"Using {'`make run`' if ours else 'an app already running'} on {base_url}.")
            if args.callback and state and ours:
                callback_url = state.get("callbackUrl")
        elif args.base_url:
            print(f"Nothing answers on {base_url}.", file=sys.stderr)
            return 1
        else:
            print(f"Nothing answers on {base_url}: starting Azurite, the sandbox and the functions for this demo")
            print("(`make run` in another terminal keeps them running between demos) ...", flush=True)
            began = time.perf_counter()
            stack = LocalStack(
                Path(),
                port=0,
                run_dir=Path(".run") / "demo",
                mode="sandbox",
                console=args.host_logs,
                callback_port=0,
                storage_ports={},
                write_state=False,
            )
            try:
                stack.start()
            except DevHostError as exc:
                print(f"devhost: cannot start: {exc}", file=sys.stderr)
                return 1
            base_url = stack.url
            callback_url = stack.callbacks.url if stack.callbacks else None
            print(f"Ready in {time.perf_counter() - began:.1f} s on {base_url}.")
        if args.callback and not callback_url:
            print("No local callback receiver is known for this app; submitting without callbackUrl.")
        results = [
            run_one(
                session,
                base_url,
                name,
                max_wait=args.max_wait,
                timeout=args.timeout,
                callback_url=callback_url if args.callback else None,
            )
            for name in customers
        ]
    except KeyboardInterrupt:
        print("\nInterrupted.")
        return 130
    finally:
        if stack is not None:
            stack.stop()
    print()
    for name, (ok, summary) in zip(customers, results, strict=True):
        print(f"{'OK  ' if ok else 'FAIL'} {name}: {summary}")
    return 0 if all(ok for ok, _ in results) else 1


def run_one(
    session: requests.Session,
    base_url: str,
    name: str,
    *,
    max_wait: float,
    timeout: float,
    callback_url: str | None = None,
) -> tuple[bool, str]:
    customer = next(c for c in DEMO_CUSTOMERS if c.name == name)
    expected = EXPECTED[name]
    body = {"customerId": customer.customer_id, "productFamily": "Azure"}
    if callback_url:
        body["callbackUrl"] = callback_url
    headers = {"Idempotency-Key": f"demo-{uuid.uuid4().hex[:12]}", "x-correlation-id": str(uuid.uuid4())}
    print()
    print(f"== {name}: {customer.summary}")
    print(f"POST {base_url}/api/upgrades")
    for key, value in headers.items():
        print(f"  {key}: {value}")
    print(_indent(json.dumps(body)))
    submitted = time.monotonic()
    response = session.post(f"{base_url}/api/upgrades", json=body, headers=headers, timeout=(5, 60))
    elapsed = (time.monotonic() - submitted) * 1000
    print(f"-> {response.status_code} {response.reason} in {elapsed:.0f} ms")
    for header in ("Location", "Retry-After", "x-correlation-id"):
        if header in response.headers:
            print(f"  {header}: {response.headers[header]}")
    print(_indent(_pretty(response)))
    if response.status_code != expected.submit_status:
        return False, f"submission answered {response.status_code}, expected {expected.submit_status}"
    if expected.final_status is None:
        return True, f"refused with {response.status_code} as expected"
    location = response.headers.get("Location")
    if not location:
        return False, "202 without a Location header"

    print()
    print(
        f"Following Location: waiting Retry-After seconds between polls, capped at {max_wait:g} s for this demo "
        "(a real client waits the full Retry-After)"
    )
    print(f"  {'time':<8}  {'since':>7}  http  {'status':<10}  {'partnerCenterStatus':<19}  checks  nextCheckAt")
    polls = 0
    while True:
        poll = session.get(location, timeout=(5, 60))
        polls += 1
        since = time.monotonic() - submitted
        resource = json_object(poll)
        print(
            f"  {datetime.now():%H:%M:%S}  {since:6.1f}s  {poll.status_code:<4}  {resource.get('status', '-')!s:<10}  "
            f"{resource.get('partnerCenterStatus') or '-'!s:<19}  {resource.get('checks', '-')!s:>6}  "
            f"{_time_of(resource.get('nextCheckAt'))}",
            flush=True,
        )
        if poll.status_code != 202:
            break
        if since > timeout:
            return False, f"still {resource.get('status')} after {since:.0f} s"
        retry_after = _seconds(poll.headers.get("Retry-After"))
        time.sleep(min(retry_after, max_wait))
    print()
    print(f"Final status resource (HTTP {poll.status_code}):")
    print(_indent(_pretty(poll)))
    final = resource.get("status")
    took = f"submit -> {final} in {since:.1f} s ({polls} polls, {resource.get('checks')} status check(s)"
    recorded = _seconds_between(resource.get("createdAt"), resource.get("lastCheckedAt"))
    took += f"; the check that saw it ran {recorded:.1f} s after creation)" if recorded is not None else ")"
    print(took)
    if poll.status_code != 200 or final != expected.final_status:
        return False, f"ended {poll.status_code} {final}, expected 200 {expected.final_status}"
    return True, took


def _answers(base_url: str) -> bool:
    """Something accepts connections there (a TCP probe: no request line in the app's console)."""
    parts = urlsplit(base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def _is_loopback(url: str) -> bool:
    return urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1")


def _pretty(response: requests.Response) -> str:
    try:
        return json.dumps(response.json(), indent=2)
    except ValueError:
        return response.text or "(empty body)"


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _seconds(value: str | None) -> float:
    try:
        return max(0.0, float(value or 1))
    except ValueError:
        return 1.0


def _seconds_between(start: object, end: object) -> float | None:
    try:
        return (_parse_time(end) - _parse_time(start)).total_seconds()
    except (TypeError, ValueError):
        return None


def _parse_time(value: object) -> datetime:
    if not isinstance(value, str):
        raise TypeError(value)
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _time_of(timestamp: object) -> str:
    text = str(timestamp or "")
    return text[11:19] + "Z" if len(text) >= 19 else "-"


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
