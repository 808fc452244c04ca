"""devhost: the local Functions host on Microsoft's Python worker, exercised through real sockets.

Azurite (in-memory, ephemeral ports) provides the queues; the toy app in tests/devhost_app provides the
functions; tests/devhost_broken holds apps the worker must refuse to load.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import json
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.storage.queue import QueueClient, QueueServiceClient, TextBase64EncodePolicy

from devhost import (
    DevHost,
    FunctionHost,
    FunctionLoadError,
    HostKeys,
    InvocationError,
    QueueTriggerMetadata,
    SteppedClock,
)
from devhost.config import Binding, FunctionConfig
from devhost.errors import ConfigError, DevHostError
from devhost.ncrontab import Schedule
from devhost.routes import Route, RouteTable, RouteTemplate
from devhost.timers import TimerScheduler
from localrun.azurite import Azurite

ROOT = Path(__file__).resolve().parents[1]
TOY_APP = ROOT / "tests" / "devhost_app"
BROKEN = ROOT / "tests" / "devhost_broken"
TOY_KEYS = {"master": "toy-master", "host": {"default": "toy-host"}, "functions": {"Echo": {"default": "toy-echo"}}}
TICK_SCHEDULE = "0 0 3 * * *"  # NCRONTAB: 03:00:00 UTC every day
CLOCK_START = datetime(2030, 1, 1, 2, 59, 58, tzinfo=UTC)


@pytest.fixture(scope="session")
def devhost_azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An in-memory Azurite on ephemeral ports; yields its connection string."""
    emulator = Azurite(tmp_path_factory.mktemp("azurite"), debug=False).start()
    yield emulator.connection_string
    emulator.stop()


def connection_string_queues(connection: str, settings: Mapping[str, str]) -> QueueServiceClient:
    """The toy app's queue-client factory: its connections are connection strings."""
    value = settings.get(connection)
    if not value:
        raise ConfigError(f"connection '{connection}' is not set")
    return QueueServiceClient.from_connection_string(value)


def raw_http(port: int, request: bytes, timeout: float = 10) -> bytes:
    """One request on its own connection (``Connection: close``), the whole answer back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def wait_for[T](probe: Callable[[], T | None], timeout: float = 30.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@dataclass
class Toy:
    host: DevHost
    conn: str
    records: Path
    api: str
    clock: SteppedClock
    http: requests.Session  # sends the host key

    def queue(self, name: str, *, base64_encoded: bool = True) -> QueueClient:
        policy = TextBase64EncodePolicy() if base64_encoded else None
        return QueueClient.from_connection_string(self.conn, name, message_encode_policy=policy)

    def ticks(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted(self.records.glob("tick-*.json"))]


@contextlib.contextmanager
def toy_app(connection: str, records: Path) -> Iterator[Toy]:
    """A DevHost serving tests/devhost_app on an ephemeral port, with keys and a stepped timer clock."""
    environ = {
        "AzureWebJobsStorage": connection,
        "ToyStorage": connection,
        "TOY_QUEUE": "Toy-Records",  # %TOY_QUEUE%; the host lower-cases queue names
        "TOY_RECORD_DIR": str(records),
        "TOY_TICK_SCHEDULE": TICK_SCHEDULE,
    }
    clock = SteppedClock(CLOCK_START)
    keys = HostKeys.from_document(TOY_KEYS)
    options: dict[str, Any] = {"queue_service": connection_string_queues, "keys": keys, "timer_clock": clock}
    with DevHost(TOY_APP, http_port=0, environ=environ, **options) as host:
        session = requests.Session()
        session.headers["x-functions-key"] = "toy-host"
        yield Toy(host, connection, records, f"{host.url}/toy", clock, session)
    assert "TOY_QUEUE" not in os.environ  # the app settings are undone on stop


def burst(port: int, clients: int, request: bytes) -> list[bytes | BaseException]:
    """`clients` connections opened at the same moment, each sending `request`; each answer or error."""
    ready = threading.Barrier(clients, timeout=30)

    def one() -> bytes:
        ready.wait()  # all connect at once
        return raw_http(port, request, timeout=20)

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(one) for _ in range(clients)]
        return [f.exception(timeout=40) or f.result() for f in futures]


class TestToyApp:
    """One DevHost serving tests/devhost_app on an ephemeral port, with keys, shared by the tests of this class."""

    @pytest.fixture(scope="class")
    @classmethod
    def toy(cls, devhost_azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Toy]:
        with toy_app(devhost_azurite, tmp_path_factory.mktemp("records")) as toy:
            yield toy

    def test_http_request_reaches_the_function_as_the_host_shapes_it(self, toy: Toy) -> None:
        body = b"\x00\xffraw bytes"
        response = toy.http.post(
            f"{toy.api}/echo/books/42?x=1&x=2&empty=&status=201",
            data=body,
            headers={"Content-Type": "application/octet-stream", "X-Custom": "a", "Host": "example.test"},
            timeout=10,
        )
        assert response.status_code == 201
        echoed = response.json()
        assert echoed["function"] == "Echo"
        assert echoed["method"] == "POST"
        assert echoed["url"] == "http://example.test/toy/echo/books/42?x=1&x=2&empty=&status=201"
        assert echoed["route_params"] == {"category": "books", "id": "42"}
        assert echoed["params"] == {"x": "1,2", "status": "201"}  # repeats joined, empty values dropped
        assert echoed["headers"]["x-custom"] == "a"
        assert echoed["headers"]["x-functions-key"] == "toy-host"  # the host passes the key header on
        assert base64.b64decode(echoed["body_b64"]) == body
        assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", echoed["trace_parent"])
        assert response.headers["X-Echo-Function"] == "Echo"
        assert response.headers["Content-Type"] == "application/json"

    def test_optional_parameter_selects_the_route(self, toy: Toy) -> None:
        without_id = toy.http.get(f"{toy.api}/echo/books", timeout=10)
        assert without_id.status_code == 200
        assert without_id.json()["route_params"] == {"category": "books"}
        assert without_id.json()["body_b64"] == ""
        assert toy.http.get(f"{toy.api}/echo/books/1/more", timeout=10).status_code == 404

    def test_async_function_gets_its_route_parameter(self, toy: Toy) -> None:
        got = requests.get(f"{toy.api}/items/a%20b", timeout=10)  # anonymous: no key
        assert (got.status_code, got.text) == (200, "item a b")
        assert got.headers["Content-Type"] == "text/plain; charset=utf-8"
        deleted = requests.delete(f"{toy.api}/items/7", timeout=10)
        assert (deleted.status_code, deleted.content) == (204, b"")

    def test_unknown_route_is_404_and_wrong_method_is_405_with_allow(self, toy: Toy) -> None:
        assert requests.get(f"{toy.api}/nothing-here", timeout=10).status_code == 404
        assert requests.get(f"{toy.host.url}/api/items/1", timeout=10).status_code == 404  # routePrefix is "toy"
        wrong = toy.http.delete(f"{toy.api}/echo/books", timeout=10)
        assert wrong.status_code == 405
        assert wrong.headers["Allow"] == "GET, POST, PUT"

    def test_failing_function_is_500_and_one_console_line(self, toy: Toy, capsys: pytest.CaptureFixture[str]) -> None:
        response = toy.http.get(f"{toy.api}/boom", timeout=10)
        assert (response.status_code, response.content) == (500, b"")
        console = capsys.readouterr().err
        failure = r"ERROR +devhost: Function 'Boom' failed \(Id=[0-9a-f-]+\): RuntimeError: kaboom on GET\n"
        assert re.search(failure, console)
        assert re.search(r"devhost\.http: GET /toy/boom -> 500 \(\d+ ms\)", console)
        assert "Traceback" not in console

    def test_function_logging_reaches_the_console_tagged_with_the_function(
        self, toy: Toy, capsys: pytest.CaptureFixture[str]
    ) -> None:
        toy.http.put(f"{toy.api}/echo/music/7", timeout=10)
        console = capsys.readouterr().err
        assert re.search(r"INFO +Echo: echo music/7", console)
        assert re.search(r"devhost\.http: PUT /toy/echo/music/7 -> 200 \(\d+ ms\)", console)

    def test_base64_message_fires_the_function_with_body_and_metadata_then_is_deleted(self, toy: Toy) -> None:
        # queueName "%TOY_QUEUE%" -> "Toy-Records" -> "toy-records"; connection "ToyStorage"
        queue = toy.queue("toy-records")
        sent = queue.send_message(json.dumps({"n": 1}))
        record_file = toy.records / f"{sent.id}.json"
        record = json.loads(wait_for(lambda: record_file.is_file() and record_file.read_text(), what="the record"))
        assert record["function"] == "Record"
        assert record["body"] == '{"n": 1}'
        assert record["id"] == sent.id
        assert record["dequeue_count"] == 1
        assert record["pop_receipt"]
        assert record["insertion_time"].endswith("+00:00")
        assert record["expiration_time"] > record["insertion_time"]
        assert record["time_next_visible"] > record["insertion_time"]  # received with a 10-minute lease
        wait_for(lambda: not queue.peek_messages() and not queue.get_queue_properties().approximate_message_count,
                 what="the message to be deleted")  # fmt: skip

    def test_failing_message_is_retried_then_moved_to_poison(
        self, toy: Toy, capsys: pytest.CaptureFixture[str]
    ) -> None:
        sent = toy.queue("toy-fail").send_message("doomed")
        console = ""

        def moved() -> bool:
            nonlocal console
            console += capsys.readouterr().err
            return "moved to toy-fail-poison" in console

        wait_for(moved, what="the move to the poison queue")
        poisoned = toy.queue("toy-fail-poison", base64_encoded=False).peek_messages()
        assert [m.content for m in poisoned] == [base64.b64encode(b"doomed").decode()]  # the original, still encoded
        assert not toy.queue("toy-fail").peek_messages()
        attempts = (toy.records / f"fail-{sent.id}.log").read_text().split()
        assert attempts == ["1", "2", "3"]  # maxDequeueCount 3, visibilityTimeout 0
        assert re.search(rf"AlwaysFails queue=toy-fail id={sent.id} dequeue=1 -> failed \(\d+ ms\)\n", console)
        last = rf"AlwaysFails queue=toy-fail id={sent.id} dequeue=3 -> failed \(\d+ ms\), moved to toy-fail-poison"
        assert re.search(last, console)
        assert "AlwaysFails' failed (Id=" in console
        assert "ValueError: cannot handle doomed" in console
        assert "Traceback" not in console

    def test_message_that_is_not_base64_goes_straight_to_poison(self, toy: Toy) -> None:
        sent = toy.queue("toy-records", base64_encoded=False).send_message("this is not base64!")
        poison = toy.queue("toy-records-poison", base64_encoded=False)
        moved = wait_for(poison.peek_messages, what="the poison message")
        assert moved[0].content == "this is not base64!"
        assert not (toy.records / f"{sent.id}.json").exists()

    # --- keys (authLevel)
    def test_function_route_answers_401_without_a_valid_key(self, toy: Toy) -> None:
        echo = f"{toy.api}/echo/books"
        missing = requests.get(echo, timeout=10)
        assert (missing.status_code, missing.content) == (401, b"")  # empty body, like the host
        assert requests.get(echo, headers={"x-functions-key": "wrong"}, timeout=10).status_code == 401
        other_functions_key = requests.get(f"{toy.api}/boom", headers={"x-functions-key": "toy-echo"}, timeout=10)
        assert other_functions_key.status_code == 401  # Echo's key does not open Boom
        assert requests.get(echo, headers={"x-functions-key": "toy-echo"}, timeout=10).status_code == 200
        assert requests.get(echo, params={"code": "toy-host"}, timeout=10).status_code == 200
        assert requests.get(echo, params={"code": "toy-echo"}, timeout=10).status_code == 200

    def test_anonymous_route_asks_nothing_and_admin_route_needs_the_master_key(self, toy: Toy) -> None:
        assert requests.get(f"{toy.api}/items/1", timeout=10).status_code == 200
        admin = f"{toy.api}/admin-only"
        assert requests.get(admin, timeout=10).status_code == 401
        assert requests.get(admin, headers={"x-functions-key": "toy-host"}, timeout=10).status_code == 401
        opened = requests.get(admin, params={"code": "toy-master"}, timeout=10)
        assert (opened.status_code, opened.text) == (200, "admin GET")

    # --- timers and the admin API
    def test_timer_function_runs_at_each_occurrence_of_its_schedule(self, toy: Toy) -> None:
        timer = next(t for t in toy.host.timers if t.function == "Tick")
        fired = timer.fired
        first = datetime(2030, 1, 1, 3, 0, 0, tzinfo=UTC) + timedelta(days=fired)  # earlier tests may have moved it
        toy.clock.advance_to(first)
        wait_for(lambda: timer.fired == fired + 1, what="the 03:00 run")
        toy.clock.advance_to(first + timedelta(hours=23, minutes=59, seconds=59))  # not yet the next occurrence
        toy.clock.advance_to(first + timedelta(days=1))
        wait_for(lambda: timer.fired == fired + 2, what="the next day's 03:00 run")
        ticks = [t for t in toy.ticks() if t["schedule_status"]["Last"] != t["schedule_status"]["LastUpdated"]]
        latest = max(ticks, key=lambda t: t["schedule_status"]["LastUpdated"])
        assert latest == {
            "past_due": False,
            "schedule": {"AdjustForDST": True},
            "schedule_status": {
                "Last": first.isoformat(),
                "LastUpdated": (first + timedelta(days=1)).isoformat(),
                "Next": (first + timedelta(days=2)).isoformat(),
            },
        }

    def test_admin_endpoint_runs_a_timer_or_queue_function_by_hand(self, toy: Toy) -> None:
        url = f"{toy.host.url}/admin/functions/Tick"
        before = len(toy.ticks())
        assert requests.post(url, json={"input": ""}, timeout=10).status_code == 401  # needs the master key
        assert requests.post(url, json={}, headers={"x-functions-key": "toy-host"}, timeout=10).status_code == 401
        accepted = requests.post(url, json={"input": ""}, headers={"x-functions-key": "toy-master"}, timeout=10)
        assert (accepted.status_code, accepted.content) == (202, b"")
        wait_for(lambda: len(toy.ticks()) == before + 1, what="the timer function run by hand")

        by_hand = requests.post(
            f"{toy.host.url}/admin/functions/record",
            json={"input": "typed in"},
            params={"code": "toy-master"},
            timeout=10,
        )
        assert by_hand.status_code == 202  # function names are case-insensitive, as in the host
        record = wait_for(lambda: [r for r in toy.records.glob("*.json") if "typed in" in r.read_text()], what="record")
        assert json.loads(record[0].read_text())["dequeue_count"] == 1
        master = {"x-functions-key": "toy-master"}
        assert requests.post(f"{toy.host.url}/admin/functions/Nope", headers=master, timeout=10).status_code == 404
        assert requests.post(f"{toy.host.url}/admin/functions/Echo", headers=master, timeout=10).status_code == 400

    # --- the HTTP front itself
    def test_unknown_method_gets_405_with_allow_on_a_known_route_and_404_elsewhere(self, toy: Toy) -> None:
        port = toy.host.http.port if toy.host.http else 0
        known = raw_http(port, b"PURGE /toy/items/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert known.startswith(b"HTTP/1.1 405 ")
        assert b"\r\nAllow: GET, DELETE\r\n" in known
        assert known.endswith(b"\r\n\r\n")  # no body (http.server would send an HTML 501 page)
        unknown = raw_http(port, b"PURGE /toy/nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert unknown.startswith(b"HTTP/1.1 404 ")

    def test_a_burst_of_300_simultaneous_connections_is_served_without_resets(self, toy: Toy) -> None:
        port = toy.host.http.port if toy.host.http else 0
        clients = 300
        began = time.monotonic()
        outcomes = burst(port, clients, b"GET /toy/nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        assert not errors, f"{len(errors)} of {clients} failed, e.g. {errors[0]!r}"
        assert all(isinstance(o, bytes) and o.startswith(b"HTTP/1.1 404 ") for o in outcomes)
        assert time.monotonic() - began < 30


# ----------------------------------------------------------------------------------------------- start-up
@pytest.mark.parametrize(
    ("case", "function", "worker_message"),
    [
        (
            "param_mismatch",
            "MismatchedParams",
            "FunctionLoadError: cannot load the MismatchedParams function: the following parameters are declared "
            "in Python but not in function.json: {'request'}",
        ),
        ("import_error", "ImportFails", "ModuleNotFoundError: No module named 'devhost_no_such_module'"),
        ("wrong_annotation", "WrongAnnotation", 'type of req binding in function.json "httpTrigger" does not match'),
    ],
)
def test_function_the_worker_refuses_stops_start_up(case: str, function: str, worker_message: str) -> None:
    host = DevHost(BROKEN / case, http_port=0)
    with pytest.raises(FunctionLoadError) as refused:
        host.start()
    assert refused.value.function_name == function
    assert worker_message in refused.value.message
    assert host.http is None


def test_syntax_error_stops_start_up(tmp_path: Path) -> None:
    # Generated here: a committed file with a syntax error would break `ruff check .` for the repo.
    (tmp_path / "host.json").write_text('{"version": "2.0"}')
    function_dir = tmp_path / "SyntaxBroken"
    function_dir.mkdir()
    (function_dir / "function.json").write_text(
        json.dumps({"bindings": [{"type": "queueTrigger", "name": "msg", "queueName": "q-syntax"}]})
    )
    (function_dir / "__init__.py").write_text("def main(msg:\n    pass\n")
    with pytest.raises(FunctionLoadError) as refused:
        FunctionHost(tmp_path).start()
    assert refused.value.function_name == "SyntaxBroken"
    assert refused.value.message.startswith("SyntaxError: ")


def test_unresolved_app_setting_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEVHOST_TEST_UNSET_QUEUE", raising=False)
    with pytest.raises(FunctionLoadError) as refused:
        FunctionHost(BROKEN / "unresolved_setting").start()
    assert refused.value.function_name == "UnresolvedQueue"
    assert "'%DEVHOST_TEST_UNSET_QUEUE%' does not resolve to a value" in refused.value.message


def test_function_host_invokes_directly_from_any_thread(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TOY_QUEUE", "toy-records")
    monkeypatch.setenv("TOY_RECORD_DIR", str(tmp_path))
    monkeypatch.setenv("TOY_TICK_SCHEDULE", TICK_SCHEDULE)
    with FunctionHost(TOY_APP) as host:
        assert host.startup_seconds is not None and host.startup_seconds < 5
        assert sorted(host.functions) == ["AdminOnly", "AlwaysFails", "Boom", "Echo", "Item", "Record", "Tick"]
        results: list[Any] = []
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            for i in range(16):
                request = {"method": "GET", "url": f"http://h/toy/items/{i}", "headers": {}, "query": {}, "body": b""}
                results.append(pool.submit(host.invoke_http, "Item", **request, route_params={"id": str(i)}))
        assert sorted(r.result().body for r in results) == sorted(f"item {i}".encode() for i in range(16))
        host.invoke_queue("Record", "direct", QueueTriggerMetadata(id="direct-1", dequeue_count=4, pop_receipt="p"))
        assert json.loads((tmp_path / "direct-1.json").read_text())["dequeue_count"] == 4
        with pytest.raises(InvocationError) as failed:
            host.invoke_queue("AlwaysFails", "x", QueueTriggerMetadata(id="direct-2", dequeue_count=1))
        assert failed.value.message == "ValueError: cannot handle x"
        assert "Traceback" in failed.value.stack_trace


def test_only_one_function_host_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOY_QUEUE", "toy-records")
    monkeypatch.setenv("TOY_TICK_SCHEDULE", TICK_SCHEDULE)
    with FunctionHost(TOY_APP), pytest.raises(DevHostError, match="already running"):
        FunctionHost(TOY_APP).start()


def test_without_keys_every_route_answers_without_a_key(
    devhost_azurite: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    environ = {"ToyStorage": devhost_azurite, "AzureWebJobsStorage": devhost_azurite, "TOY_QUEUE": "toy-nokeys",
               "TOY_RECORD_DIR": str(tmp_path), "TOY_TICK_SCHEDULE": TICK_SCHEDULE}  # fmt: skip
    with DevHost(TOY_APP, http_port=0, environ=environ, queue_service=connection_string_queues) as host:
        assert requests.get(f"{host.url}/toy/echo/books", timeout=10).status_code == 200
        assert requests.get(f"{host.url}/toy/admin-only", timeout=10).status_code == 200
        assert requests.post(f"{host.url}/admin/functions/Tick", json={}, timeout=10).status_code == 202
        wait_for(lambda: list(tmp_path.glob("tick-*.json")), what="the timer run by hand")
    assert "Function keys are not enforced" in capsys.readouterr().err


def test_queue_trigger_without_a_queue_client_factory_is_refused(tmp_path: Path) -> None:
    environ = {"TOY_QUEUE": "toy-records", "TOY_RECORD_DIR": str(tmp_path), "TOY_TICK_SCHEDULE": TICK_SCHEDULE}
    with pytest.raises(ConfigError, match="needs queue_service="):
        DevHost(TOY_APP, http_port=0, environ=environ).start()


# ----------------------------------------------------------------------------------------------- pure parts
def test_keys_file_gives_host_function_and_master_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"host": {"default": "h"}, "functions": {"F": {"default": "f"}}}))
    keys = HostKeys.load(path)
    assert keys.allows("function", "F", "h") and keys.allows("function", "F", "f")
    assert not keys.allows("function", "G", "f") and not keys.allows("function", "F", None)
    assert keys.allows("admin", None, "h")  # no "master" in the file: the host key is the master key
    assert keys.allows("anonymous", "F", None)
    assert not HostKeys.from_document(TOY_KEYS).allows("admin", None, "toy-host")
    assert HostKeys.none().allows("admin", None, None)
    path.write_text('{"host": {"default": ""}}')
    with pytest.raises(ConfigError):
        HostKeys.load(path)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 30 3 * * *", "2030-01-01T03:30:00", "2030-01-02T03:30:00"),  # CONSENT_CHECK_SCHEDULE's default
        ("*/15 * * * * *", "2030-01-01T00:00:07", "2030-01-01T00:00:15"),
        ("0 0 9-17/4 * * Mon-Fri", "2030-01-04T17:00:00", "2030-01-07T09:00:00"),  # Fri 17:00 -> Mon 09:00
        ("0 0 0 29 Feb *", "2030-03-01T00:00:00", "2032-02-29T00:00:00"),
        ("0 0 12 13 * 5", "2030-01-01T00:00:00", "2030-09-13T12:00:00"),  # day AND weekday, as NCrontab
        ("5,10 0 0 1 1 0", "2030-01-01T00:00:00", "2034-01-01T00:00:05"),
    ],
)
def test_ncrontab_next_occurrence(expression: str, after: str, expected: str) -> None:
    moment = datetime.fromisoformat(after).replace(tzinfo=UTC)
    assert Schedule.parse(expression).next_after(moment) == datetime.fromisoformat(expected).replace(tzinfo=UTC)


@pytest.mark.parametrize("expression", ["0 30 3 * *", "60 * * * * *", "* * * * * Funday", "*/0 * * * * *"])
def test_invalid_ncrontab_is_refused(expression: str) -> None:
    with pytest.raises(ConfigError):
        Schedule.parse(expression)


def test_run_on_startup_fires_once_at_start_then_on_schedule() -> None:
    trigger = Binding("timer", "timerTrigger", "in", "undefined", {"schedule": "0 0 * * * *", "runOnStartup": True})
    config = FunctionConfig("Hourly", Path(), Path("__init__.py"), "", (trigger,), ())
    clock = SteppedClock(datetime(2030, 1, 1, 10, 15, tzinfo=UTC))
    runs: list[dict[str, Any]] = []
    scheduler = TimerScheduler(config, lambda name, payload: runs.append(payload), clock)
    scheduler.start()
    try:
        wait_for(lambda: len(runs) == 1, what="the start-up run")
        clock.advance_to(datetime(2030, 1, 1, 11, tzinfo=UTC))
        wait_for(lambda: len(runs) == 2, what="the 11:00 run")
    finally:
        scheduler.stop()
    assert runs[0]["ScheduleStatus"]["Next"] == "2030-01-01T11:00:00+00:00"
    assert runs[1]["ScheduleStatus"] == {"Last": "2030-01-01T10:15:00+00:00", "Next": "2030-01-01T12:00:00+00:00",
                                         "LastUpdated": "2030-01-01T11:00:00+00:00"}  # fmt: skip
    assert runs[1]["IsPastDue"] is False


def test_routes_prefer_the_most_specific_template() -> None:
    table = RouteTable(
        [
            Route("ById", RouteTemplate("api/upgrades/{upgradeId}"), ("GET",)),
            Route("Stats", RouteTemplate("api/upgrades/stats"), ("GET",)),
            Route("List", RouteTemplate("api/items/{page?}"), None),
        ]
    )
    guid = str(uuid.uuid4())
    assert table.resolve("/api/upgrades/stats", "GET")[0].route.function == "Stats"  # type: ignore[union-attr]
    assert table.resolve(f"/api/upgrades/{guid}", "get")[0].params == {"upgradeId": guid}  # type: ignore[union-attr]
    assert table.resolve(f"/API/Upgrades/{guid}/", "POST") == (None, ["GET"])
    assert table.resolve("/api/items", "PUT")[0].params == {}  # type: ignore[union-attr]
    assert table.resolve("/api/items/a%20b", "GET")[0].params == {"page": "a b"}  # type: ignore[union-attr]
    assert table.resolve("/api/items/1/2", "GET") == (None, [])
    with pytest.raises(ConfigError, match="not supported"):
        RouteTemplate("api/{id:int}")
