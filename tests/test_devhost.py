"""devhost: the local Functions host on Microsoft's Python worker, exercised through real sockets.

Azurite (in-memory, ephemeral ports) provides the queues; the toy app in tests/devhost_app provides the
functions; tests/devhost_broken holds apps the worker must refuse to load.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.identity import ManagedIdentityCredential
from azure.storage.queue import QueueClient, QueueServiceClient, TextBase64EncodePolicy

from devhost import DevHost, FunctionHost, FunctionLoadError, InvocationError, QueueTriggerMetadata
from devhost.errors import ConfigError, DevHostError
from devhost.routes import Route, RouteTable, RouteTemplate
from devhost.storage import queue_service_client

ROOT = Path(__file__).resolve().parents[1]
TOY_APP = ROOT / "tests" / "devhost_app"
BROKEN = ROOT / "tests" / "devhost_broken"
AZURITE_BIN = Path(os.environ.get("AZURITE_BIN", ROOT / "node_modules" / ".bin" / "azurite"))
ACCOUNT = "devstoreaccount1"
# Azurite's well-known development account key (public, documented by Microsoft)
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_LISTENING = re.compile(r"Azurite (Blob|Queue|Table) service is successfully listening at http://127\.0\.0\.1:(\d+)")


@pytest.fixture(scope="session")
def devhost_azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An in-memory Azurite on ephemeral ports; yields its connection string."""
    if not AZURITE_BIN.exists():
        pytest.skip(f"Azurite not installed at {AZURITE_BIN} (npm ci)")
    log_file = tmp_path_factory.mktemp("azurite") / "azurite.log"
    command = [
        str(AZURITE_BIN), "--silent", "--inMemoryPersistence", "--extentMemoryLimit", "64",
        "--blobHost", "127.0.0.1", "--queueHost", "127.0.0.1", "--tableHost", "127.0.0.1",
        "--blobPort", "0", "--queuePort", "0", "--tablePort", "0",
        "--skipApiVersionCheck", "--disableTelemetry",
    ]  # fmt: skip
    with log_file.open("w") as out:  # a file, not a pipe: an undrained pipe can stall Azurite
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        ports: dict[str, int] = {}
        while len(ports) < 3:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("Azurite did not start:\n" + log_file.read_text())
            ports = {m[1].lower(): int(m[2]) for m in _LISTENING.finditer(log_file.read_text())}
            time.sleep(0.02)
        yield (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{ports['blob']}/{ACCOUNT};"
            f"QueueEndpoint=http://127.0.0.1:{ports['queue']}/{ACCOUNT};"
            f"TableEndpoint=http://127.0.0.1:{ports['table']}/{ACCOUNT};"
        )
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # its own session: only what we started
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_for[T](probe: Callable[[], T | None], timeout: float = 8.0, what: str = "condition") -> T:
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

    def queue(self, name: str, *, base64_encoded: bool = True) -> QueueClient:
        policy = TextBase64EncodePolicy() if base64_encoded else None
        return QueueClient.from_connection_string(self.conn, name, message_encode_policy=policy)


class TestToyApp:
    """One DevHost serving tests/devhost_app on an ephemeral port, shared by the tests of this class."""

    @pytest.fixture(scope="class")
    @classmethod
    def toy(cls, devhost_azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Toy]:
        records = tmp_path_factory.mktemp("records")
        environ = {
            "AzureWebJobsStorage": devhost_azurite,
            "ToyStorage": devhost_azurite,
            "TOY_QUEUE": "Toy-Records",  # %TOY_QUEUE%; the host lower-cases queue names
            "TOY_RECORD_DIR": str(records),
        }
        with DevHost(TOY_APP, http_port=0, environ=environ) as host:
            yield Toy(host, devhost_azurite, records, f"{host.url}/toy")
        assert "TOY_QUEUE" not in os.environ  # the app settings are undone on stop

    def test_http_request_reaches_the_function_as_the_host_shapes_it(self, toy: Toy) -> None:
        body = b"\x00\xffraw bytes"
        response = requests.post(
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
        assert base64.b64decode(echoed["body_b64"]) == body
        assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", echoed["trace_parent"])
        assert response.headers["X-Echo-Function"] == "Echo"
        assert response.headers["Content-Type"] == "application/json"
        assert response.raw.headers.getlist("Set-Cookie") == ["first=1; path=/", "second=2; path=/toy; httponly"]

    def test_optional_parameter_and_constraints_select_the_route(self, toy: Toy) -> None:
        without_id = requests.get(f"{toy.api}/echo/books", timeout=10)
        assert without_id.status_code == 200
        assert without_id.json()["route_params"] == {"category": "books"}
        assert without_id.json()["body_b64"] == ""
        assert requests.get(f"{toy.api}/echo/123", timeout=10).status_code == 404  # {category:alpha}
        assert requests.get(f"{toy.api}/echo/books/x", timeout=10).status_code == 404  # {id:int?}

    def test_async_function_gets_its_route_parameter(self, toy: Toy) -> None:
        got = requests.get(f"{toy.api}/items/a%20b", timeout=10)
        assert (got.status_code, got.text) == (200, "item a b")
        assert got.headers["Content-Type"] == "text/plain; charset=utf-8"
        deleted = requests.delete(f"{toy.api}/items/7", timeout=10)
        assert (deleted.status_code, deleted.content) == (204, b"")

    def test_unknown_route_is_404_and_wrong_method_is_405_with_allow(self, toy: Toy) -> None:
        assert requests.get(f"{toy.api}/nothing-here", timeout=10).status_code == 404
        assert requests.get(f"{toy.host.url}/api/items/1", timeout=10).status_code == 404  # routePrefix is "toy"
        wrong = requests.delete(f"{toy.api}/echo/books", timeout=10)
        assert wrong.status_code == 405
        assert wrong.headers["Allow"] == "GET, POST, PUT"

    def test_failing_function_is_500_and_one_console_line(self, toy: Toy, capsys: pytest.CaptureFixture[str]) -> None:
        response = requests.get(f"{toy.api}/boom", timeout=10)
        assert (response.status_code, response.content) == (500, b"")
        console = capsys.readouterr().err
        failure = r"ERROR +devhost: Function 'Boom' failed \(Id=[0-9a-f-]+\): RuntimeError: kaboom on GET\n"
        assert re.search(failure, console)
        assert re.search(r"devhost\.http: GET /toy/boom -> 500 \(\d+ ms\)", console)
        assert "Traceback" not in console

    def test_function_logging_reaches_the_console_tagged_with_the_function(
        self, toy: Toy, capsys: pytest.CaptureFixture[str]
    ) -> None:
        requests.put(f"{toy.api}/echo/music/7", timeout=10)
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
    with FunctionHost(TOY_APP) as host:
        assert host.startup_seconds is not None and host.startup_seconds < 5
        assert sorted(host.functions) == ["AlwaysFails", "Boom", "Echo", "Item", "Record"]
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
    with FunctionHost(TOY_APP), pytest.raises(DevHostError, match="already running"):
        FunctionHost(TOY_APP).start()


# ----------------------------------------------------------------------------------------------- pure parts
def test_identity_based_connection_uses_the_queue_service_uri_and_managed_identity() -> None:
    settings = {
        "Conn__queueServiceUri": "https://acct.queue.core.windows.net",
        "Conn__credential": "managedidentity",
        "Conn__clientId": "00000000-0000-0000-0000-000000000001",
    }
    client = queue_service_client("Conn", settings)
    assert client.url.startswith("https://acct.queue.core.windows.net")
    assert isinstance(client.credential, ManagedIdentityCredential)
    default = queue_service_client("", {"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    assert isinstance(default, QueueServiceClient)
    with pytest.raises(ConfigError, match="'Missing' does not exist"):
        queue_service_client("Missing", {})


def test_routes_prefer_the_most_specific_template() -> None:
    table = RouteTable(
        [
            Route("ById", RouteTemplate("api/upgrades/{upgradeId:guid}"), ("GET",)),
            Route("Stats", RouteTemplate("api/upgrades/stats"), ("GET",)),
            Route("Files", RouteTemplate("api/files/{*path}"), None),
        ]
    )
    guid = str(uuid.uuid4())
    assert table.resolve("/api/upgrades/stats", "GET")[0].route.function == "Stats"  # type: ignore[union-attr]
    assert table.resolve(f"/api/upgrades/{guid}", "get")[0].params == {"upgradeId": guid}  # type: ignore[union-attr]
    assert table.resolve("/api/upgrades/not-a-guid", "GET") == (None, [])
    assert table.resolve(f"/API/Upgrades/{guid}/", "POST") == (None, ["GET"])
    assert table.resolve("/api/files/a/b%20c.txt", "PUT")[0].params == {"path": "a/b c.txt"}  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="could not be resolved"):
        RouteTemplate("api/{id:nope}")
