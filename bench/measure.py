"""The four measurements of `make bench`, each returning rows for the report."""

from __future__ import annotations

import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests
from azure.functions.queue import QueueMessage

import CreateUpgrade
import UpgradeStatus
from bench.latency_proxy import LatencyProxy, delayed_connection_string
from bench.naive_relay import relay_create
from bench.stack import CALLER, ROOT, Stack, create_request
from localrun.virtual_queues import call_queue_function
from sandbox.clock import ManualClock
from sandbox.partner_center import Customer, Step
from sandbox.stack import APP_ID_SECRET, APP_SECRET_SECRET, REFRESH_TOKEN_SECRET
from shared.partner_center.client import APPLICATION_NAME, CREATE_PATH, ELIGIBILITY_PATH
from shared.services import services

SAM_SECRETS = (APP_ID_SECRET, APP_SECRET_SECRET, REFRESH_TOKEN_SECRET)
SERVICES = ("table", "queue")  # the storage services the app uses


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _timed(action: Callable[[], object], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


# --- 1. warm per-request overhead ---------------------------------------------------------------------


@dataclass(frozen=True)
class Overhead:
    latency_ms: int
    bare_p50: float
    bare_p99: float
    app_p50: float
    app_p99: float
    keyed_p50: float  # the app with an Idempotency-Key (claim before, completion beside the record's writes)
    keyed_p99: float
    naive_p50: float  # the naive relay: one create, but its own credential, secrets and token every time
    naive_p99: float


def overhead(stack: Stack, latency_ms: int, runs: int, storage_ms: int = 0) -> Overhead:
    """The app's POST (eligibility + create + record + schedule) against the same two Partner Center calls
    made bare on one keep-alive session with a ready token, and the naive relay's POST beside them. With
    `storage_ms`, every storage request reaches Azurite that much later (bench/latency_proxy.py)."""
    with contextlib.ExitStack() as proxies:
        if storage_ms:
            delay = storage_ms / 1000
            delayed = {name: proxies.enter_context(LatencyProxy(stack.azurite.ports[name], delay)) for name in SERVICES}
            stack.fresh_app(AzureWebJobsStorage=delayed_connection_string(stack.env["AzureWebJobsStorage"], delayed))
        else:
            stack.fresh_app()
        measured = _overhead(stack, latency_ms, runs)
    stack.fresh_app()
    return measured


def _overhead(stack: Stack, latency_ms: int, runs: int) -> Overhead:
    pc = stack.sandbox.partner_center
    pc.latency = latency_ms / 1000
    for _ in range(10):  # warm: secrets, token, connections, table and queue created
        assert CreateUpgrade.main(create_request()).status_code == 202

    def app_call() -> None:
        assert CreateUpgrade.main(create_request()).status_code == 202

    def keyed_call() -> None:
        assert CreateUpgrade.main(create_request(key=str(uuid.uuid4()))).status_code == 202

    def naive_call() -> None:
        assert relay_create(stack.env, str(uuid.uuid4())) == 202

    token = services().tokens.access_token()
    session = requests.Session()

    def bare_call() -> None:
        payload = json.dumps({"customerId": str(uuid.uuid4()), "productFamily": "Azure"})
        for path in (ELIGIBILITY_PATH, CREATE_PATH):
            headers = {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "Content-Type": "application/json",
                "MS-RequestId": str(uuid.uuid4()),
                "MS-CorrelationId": str(uuid.uuid4()),
                "X-Locale": "en-US",
                "MS-PartnerCenter-Application": APPLICATION_NAME,
            }
            response = session.post(pc.url + path, data=payload, headers=headers, timeout=30)
            assert response.status_code in (200, 202)

    bare_call()
    keyed_call()
    app, keyed, bare = _interleaved([app_call, keyed_call, bare_call], runs)
    naive = _timed(naive_call, max(10, runs // 5))
    pc.latency = 0.0
    return Overhead(
        latency_ms,
        *(percentile(bare, 0.5), percentile(bare, 0.99), percentile(app, 0.5), percentile(app, 0.99)),
        *(percentile(keyed, 0.5), percentile(keyed, 0.99), percentile(naive, 0.5), percentile(naive, 0.99)),
    )


def _interleaved(actions: list[Callable[[], object]], runs: int, block: int = 10) -> list[list[float]]:
    """Samples of each action taken in turns, `block` at a time, so that a burst of load on the machine
    falls on all of them alike rather than on whichever ran then."""
    samples: list[list[float]] = [[] for _ in actions]
    while len(samples[0]) < runs:
        for action, into in zip(actions, samples, strict=True):
            into.extend(_timed(action, min(block, runs - len(into))))
    return samples


# --- 2. outside calls per 1,000 requests: the app vs the naive relay -----------------------------------


@dataclass(frozen=True)
class Calls:
    name: str
    seconds: float
    key_vault_reads: int
    token_exchanges: int
    identity_tokens: int
    partner_center_calls: int
    accepted: int


def calls_per_thousand(stack: Stack, requests_count: int = 1000, threads: int = 32) -> list[Calls]:
    def app_call(_: int) -> int:
        return int(CreateUpgrade.main(create_request()).status_code)

    def naive_call(_: int) -> int:
        return relay_create(stack.env, str(uuid.uuid4()))

    results = []
    for name, call in (("app (one instance)", app_call), ("naive relay", naive_call)):
        stack.fresh_app()
        stack.sandbox.reset()
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=threads) as pool:
            statuses = list(pool.map(call, range(requests_count)))
        sandbox = stack.sandbox
        results.append(
            Calls(
                name=name,
                seconds=time.perf_counter() - started,
                key_vault_reads=sum(sandbox.key_vault.reads(n) for n in SAM_SECRETS),
                token_exchanges=sandbox.entra.exchanges,
                identity_tokens=sum(sandbox.identity.tokens_issued.values()),
                partner_center_calls=len(sandbox.partner_center.log),
                accepted=statuses.count(202),
            )
        )
    return results


# --- 3. cold start ----------------------------------------------------------------------------------

FUNCTIONS = sorted(path.parent.name for path in ROOT.glob("*/function.json"))
PROBE = """
import time
started = time.perf_counter()
import json, sys
sys.path.insert(0, {root!r})
import azure.functions as func
import {functions}  # the worker loads every function at start
import CreateUpgrade
loaded = time.perf_counter()
print("--- functions loaded ---", file=sys.stderr, flush=True)
request = func.HttpRequest("POST", "https://bench.example/api/upgrades",
    headers={{"Content-Type": "application/json", "X-Caller-Key": "{caller_key}"}},
    body=json.dumps({{"customerId": "{customer}", "productFamily": "Azure"}}).encode())
status = CreateUpgrade.main(request).status_code
first = time.perf_counter()
cpu = time.process_time()
print(json.dumps({{"cpu": cpu, "started": started, "loaded": loaded, "first": first, "status": status}}))
"""
_IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+(?P<cumulative>\d+) \| (?P<indent>\s*)(?P<name>\S+)")


@dataclass(frozen=True)
class ColdStart:
    total: float  # process start (spawn) to the first 202 answered, seconds
    interpreter: float
    load: float
    first_request: float
    imports_at_load: float
    imports_in_first_request: float


def cold_start(stack: Stack, runs: int = 5) -> ColdStart:
    samples = [_cold_once(stack, importtime=False) for _ in range(runs)]
    traced = [_cold_once(stack, importtime=True) for _ in range(runs)]

    def median(field: str, of: list[dict[str, float]]) -> float:
        return statistics.median(sample[field] for sample in of)

    return ColdStart(
        total=median("total", samples),
        interpreter=median("interpreter", samples),
        load=median("load", samples),
        first_request=median("first", samples),
        imports_at_load=median("imports_at_load", traced),
        imports_in_first_request=median("imports_in_first", traced),
    )


def _cold_once(stack: Stack, *, importtime: bool) -> dict[str, float]:
    env = os.environ | stack.env | {"UPGRADE_STATUS_QUEUE": "bench-cold", "UPGRADES_TABLE": "benchcold"}
    probe = PROBE.format(
        root=str(ROOT), functions=", ".join(FUNCTIONS), customer=uuid.uuid4(), caller_key=CALLER["X-Caller-Key"]
    )
    command = [sys.executable, *(["-X", "importtime"] if importtime else []), "-c", probe]
    spawned = time.perf_counter()  # CLOCK_MONOTONIC: the probe's perf_counter reads the same clock
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True, timeout=120)  # noqa: S603
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == 202, done.stderr[-2000:]
    before, _, after = done.stderr.partition("--- functions loaded ---")
    return {
        "total": result["first"] - spawned,  # to the 202, not to the process's exit
        "interpreter": result["started"] - spawned,
        "load": result["loaded"] - result["started"],
        "first": result["first"] - result["loaded"],
        "imports_at_load": _top_level_import_seconds(before),
        "imports_in_first": _top_level_import_seconds(after),
    }


def _top_level_import_seconds(trace: str) -> float:
    micros = 0
    for line in trace.splitlines():
        match = _IMPORT_LINE.match(line)
        if match and not match.group("indent"):
            micros += int(match.group("cumulative"))
    return micros / 1e6


# --- 3b. import of each function's module --------------------------------------------------------

HEAVY = ("azure.core", "azure.data", "azure.storage", "azure.identity", "azure.keyvault", "requests", "urllib3")


@dataclass(frozen=True)
class ImportCost:
    name: str
    millis: float  # median cumulative import time of the module, azure.functions already loaded (as the worker has)
    modules: int  # modules its import loads
    heavy: tuple[str, ...]  # SDK packages among them (none: they load with the first request)


@dataclass(frozen=True)
class FunctionImports:
    at_load: ImportCost  # the function's module: what the worker imports when it loads the function
    first_call: ImportCost | None  # the adapter its `main` imports on the first call (None for azure.functions)


def import_costs(runs: int = 5) -> list[FunctionImports]:
    """`python -X importtime -c "import azure.functions; import <Function>"`, each in a new process, and the same
    for the adapter module the function's `main` imports on its first call."""
    costs = [FunctionImports(_import_cost("azure.functions", "", runs), None)]
    for name in FUNCTIONS:
        adapter = _ADAPTER.search((ROOT / name / "__init__.py").read_text())
        assert adapter, f"{name}/__init__.py imports no adapter in main"
        costs.append(
            FunctionImports(
                _import_cost(name, "import azure.functions\n", runs),
                _import_cost(adapter.group(1), "import azure.functions\n", runs),
            )
        )
    return costs


_ADAPTER = re.compile(r"^\s+from (\S+) import \w+", re.MULTILINE)


def _import_cost(name: str, preload: str, runs: int) -> ImportCost:
    times, loaded = [], []
    for _ in range(runs):
        command = [sys.executable, "-X", "importtime", "-c", f"{preload}import {name}"]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True, timeout=60)  # noqa: S603
        _, _, trace = done.stderr.partition("| azure.functions\n") if preload else ("", "", done.stderr)
        names = [m.group("name") for m in map(_IMPORT_LINE.match, trace.splitlines()) if m]
        top = [m for m in map(_IMPORT_LINE.match, trace.splitlines()) if m and m.group("name") == name]
        times.append(int(top[-1].group("cumulative")) / 1000)
        loaded = names
    heavy = tuple(sorted({n.split(".")[0] if n.startswith(("requests", "urllib3")) else ".".join(n.split(".")[:2])
                          for n in loaded if n.startswith(HEAVY)}))  # fmt: skip
    return ImportCost(name, statistics.median(times), len(loaded), heavy)


# --- 4. Partner Center status calls per tracked upgrade ------------------------------------------------


def status_calls(stack: Stack, clock: ManualClock, minutes: int) -> int:
    """Track one upgrade that completes after `minutes`, on the default schedule, in virtual time."""
    queue = f"bench-poll-{minutes}"
    stack.fresh_app(UPGRADE_STATUS_QUEUE=queue)
    clock.freeze()
    services().clock = clock
    customer = str(uuid.uuid4())
    pc = stack.sandbox.partner_center
    pc.add_customer(Customer(customer, progression=[Step(0, "InProgress"), Step(minutes * 60, "Completed")]))
    before = len(pc.requests_to("status"))
    assert CreateUpgrade.main(create_request(customer)).status_code == 202
    handled = 0
    try:
        while True:
            scheduled = stack.azurite.put_messages(queue)
            if handled == len(scheduled):
                break  # final: nothing new was scheduled
            message = scheduled[handled]
            clock.advance(message.visibility_timeout)
            delivered = QueueMessage(id=str(uuid.uuid4()), body=message.text.encode(), dequeue_count=1)  # type: ignore[no-untyped-call]
            call_queue_function(UpgradeStatus.main, delivered)
            handled += 1
    finally:
        clock.thaw()
    return len(pc.requests_to("status")) - before
