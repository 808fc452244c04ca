"""``python -m localrun.demo`` (`make demo`): submit a sandbox upgrade and follow it to its final state.

Uses the `make run` of this checkout wherever it runs (``.run/<port>/app.json``: the newest live one, or the one
on ``--port``), with its function key when it enforces keys; otherwise starts the same stack as `make run`
(Azurite, the sandbox, the functions, on free ports) for the length of the demo.
Exits 0 when every upgrade ended the way its sandbox customer should, 1 otherwise.

    python -m localrun.demo                          # the "eligible" customer
    python -m localrun.demo --customer failing       # one whose line item fails
    python -m localrun.demo --port 7081 --customer eligible --customer not-eligible
    python -m localrun.demo --fleet                  # a report batch over every sandbox customer, and its CSV
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
from typing import Any, NoReturn
from urllib.parse import urlsplit

import requests

from devhost import DevHostError, HostKeys
from localrun.fleet_demo import run_fleet_report
from localrun.local_run import LocalRun
from localrun.run_state import live_runs
from sandbox.customers import DEMO_CUSTOMERS
from shared.partner_center.outbound import json_object

DEFAULT_MAX_WAIT = 3.0
DEMO_FLEET = 300  # customers the demo's own stack gets for --fleet
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


@dataclass
class Target:
    """The app the demo talks to; ``stack`` when the demo started it itself."""

    base_url: str
    callback_url: str | None = None
    key: str | None = None
    stack: LocalRun | None = None
    caller_key: str | None = None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    customers: list[str] = args.customer or ["eligible"]
    signal.signal(signal.SIGTERM, _interrupt)
    target: Target | None = None
    try:
        found = find_app(args)
        if isinstance(found, int):
            return found
        target = found
        session = requests.Session()
        session.trust_env = not _is_loopback(target.base_url)  # no proxy between us and a local app
        if target.key:
            session.headers["x-functions-key"] = target.key
        if target.caller_key:
            session.headers["X-Caller-Key"] = target.caller_key
        if args.callback and not target.callback_url:
            print("No local callback receiver is known for this app; submitting without callbackUrl.")
        callback_url = target.callback_url if args.callback else None
        if args.fleet:
            ok, summary = run_fleet_report(session, target.base_url, Path(".run"), timeout=args.timeout)
            print(f"\n{'OK  ' if ok else 'FAIL'} fleet report: {summary}")
            return 0 if ok else 1
        results = [
            run_one(session, target.base_url, name, max_wait=args.max_wait, timeout=args.timeout,
                    callback_url=callback_url)
            for name in customers
        ]  # fmt: skip
    except KeyboardInterrupt:
        print("\nInterrupted.")
        return 130
    finally:
        if target is not None and target.stack is not None:
            target.stack.stop()
    print()
    for name, (ok, summary) in zip(customers, results, strict=True):
        print(f"{'OK  ' if ok else 'FAIL'} {name}: {summary}")
    return 0 if all(ok for ok, _ in results) else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m localrun.demo",
        description="Submit a sandbox upgrade (make demo) and follow it to its final state.",
        epilog="Uses the `make run` of this checkout (the newest, or the one on --port), else starts one for the demo.",
    )
    parser.add_argument(
        "--customer",
        action="append",
        choices=[c.name for c in DEMO_CUSTOMERS],
        help="sandbox customer to upgrade; repeat for several (default: eligible)",
    )
    parser.add_argument("--port", type=int, default=None, help="the `make run` on this port (make demo PORT=7081)")
    parser.add_argument("--base-url", default=None, help="an app somewhere else (e.g. func start)")
    parser.add_argument(
        "--caller-key", default=None, help="caller key to send as X-Caller-Key (default: the one `make run` printed)"
    )
    parser.add_argument("--key", default=None, help="host key for the admin API (default: from the run's --keys file)")
    parser.add_argument(
        "--max-wait",
        type=float,
        default=DEFAULT_MAX_WAIT,
        help=f"longest wait between polls, whatever Retry-After says (default: {DEFAULT_MAX_WAIT:g} s)",
    )
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="give up after this many seconds")
    parser.add_argument("--host-logs", action="store_true", help="show the host's console when the demo starts it")
    parser.add_argument(
        "--fleet",
        action="store_true",
        help="a report batch over every sandbox customer (make run ARGS='--fleet 300' adds a fleet); saves the CSV",
    )
    parser.add_argument(
        "--callback",
        action="store_true",
        help="also ask for a callback to the local receiver (https://localhost:7072/callbacks with `make run`)",
    )
    return parser


def find_app(args: argparse.Namespace) -> Target | int:
    """The app to use: ``--base-url``, the `make run` on ``--port``, the newest live `make run`, else one of our own.

    Returns an exit code instead when there is nothing to use (or only a real-mode app).
    """
    if args.base_url:
        base_url = str(args.base_url).rstrip("/")
        if not _answers(base_url):
            print(f"Nothing answers on {base_url}.", file=sys.stderr)
            return 1
        print(f"Using the app on {base_url}.")
        return Target(base_url, key=args.key, caller_key=args.caller_key)
    runs = live_runs(Path())
    if args.port is not None:
        runs = [r for r in runs if urlsplit(str(r.get("url"))).port == args.port]
        if not runs:
            print(f"No `make run` of this checkout is running on port {args.port} (.run/{args.port}/app.json).",
                  file=sys.stderr)  # fmt: skip
            return 1
    if runs:
        return _use_run(runs, args)
    return _start_own(args)


def _use_run(runs: list[dict[str, Any]], args: argparse.Namespace) -> Target | int:
    state = runs[0]
    base_url = str(state["url"])
    if state.get("mode") != "sandbox":
        print(f"The app on {base_url} runs in {state.get('mode')} mode, against real Partner Center;")
        print("the demo only submits sandbox customers. Stop it, or run `make run` in sandbox mode.")
        return 2
    others = ", ".join(str(r.get("url")) for r in runs[1:])
    print(f"Using `make run` on {base_url}" + (f" (the newest; also running: {others}; make demo PORT=…)." if others
                                                 else "."))  # fmt: skip
    key = args.key
    if key is None and state.get("keysFile"):
        key = HostKeys.load(Path(str(state["keysFile"]))).any_host_key()
    caller_key = args.caller_key or (str(state["callerKey"]) if state.get("callerKey") else None)
    return Target(base_url, callback_url=state.get("callbackUrl"), key=key, caller_key=caller_key)


def _start_own(args: argparse.Namespace) -> Target | int:
    print("No `make run` of this checkout is running: starting Azurite, the sandbox and the functions for this demo")
    print("(`make run` in another terminal keeps them running between demos) ...", flush=True)
    began = time.perf_counter()
    stack = LocalRun(Path(), port=0, run_dir=Path(".run") / "demo", mode="sandbox", console=args.host_logs,
                       callback_port=0, storage_ports={}, write_state=False,
                       fleet=DEMO_FLEET if args.fleet else 0)  # fmt: skip
    try:
        stack.start()
    except DevHostError as exc:
        print(f"localrun: cannot start: {exc}", file=sys.stderr)
        return 1
    print(f"Ready in {time.perf_counter() - began:.1f} s on {stack.url}.")
    callbacks = stack.callbacks.url if stack.callbacks else None
    return Target(stack.url, callback_url=callbacks, stack=stack, caller_key=stack.caller_key)


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
    print()
    print(f"== {name}: {customer.summary}")
    response, submitted = _submit(session, base_url, customer.customer_id, callback_url)
    if response.status_code != expected.submit_status:
        return False, f"submission answered {response.status_code}, expected {expected.submit_status}"
    if expected.final_status is None:
        return True, f"refused with {response.status_code} as expected"
    location = response.headers.get("Location")
    if not location:
        return False, "202 without a Location header"
    last = _follow(session, location, submitted, max_wait=max_wait, timeout=timeout)
    if isinstance(last, str):
        return False, last
    return _report_final(last, expected)


@dataclass
class _LastPoll:
    """The answer that ended the polling, and how long and how many polls it took."""

    response: requests.Response
    resource: dict[str, Any]
    since: float  # seconds since the submission
    polls: int


def _submit(
    session: requests.Session, base_url: str, customer_id: str, callback_url: str | None
) -> tuple[requests.Response, float]:
    """POST the upgrade, printing the request and the answer; the answer, and when it was sent (monotonic)."""
    body = {"customerId": customer_id, "productFamily": "Azure"}
    if callback_url:
        body["callbackUrl"] = callback_url
    headers = {"Idempotency-Key": f"demo-{uuid.uuid4().hex[:12]}", "x-correlation-id": str(uuid.uuid4())}
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
    return response, submitted


def _follow(
    session: requests.Session, location: str, submitted: float, *, max_wait: float, timeout: float
) -> _LastPoll | str:
    """Poll `location` until it stops answering 202, a line per poll; why not, when `timeout` runs out first."""
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
            return _LastPoll(poll, resource, since, polls)
        if since > timeout:
            return f"still {resource.get('status')} after {since:.0f} s"
        retry_after = _seconds(poll.headers.get("Retry-After"))
        time.sleep(min(retry_after, max_wait))


def _report_final(last: _LastPoll, expected: Expected) -> tuple[bool, str]:
    """Print the final status resource and how long it took; whether it ended as `expected`."""
    poll, resource = last.response, last.resource
    print()
    print(f"Final status resource (HTTP {poll.status_code}):")
    print(_indent(_pretty(poll)))
    final = resource.get("status")
    took = f"submit -> {final} in {last.since:.1f} s ({last.polls} polls, {resource.get('checks')} status check(s)"
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
