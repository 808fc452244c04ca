"""Bad input gets a clear 4xx that names the problem, and nothing reaches Partner Center, Entra or Key Vault."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from localrun.azurite import Azurite
from sandbox.stack import Sandbox
from support.harness import AppHarness

PROBLEM = "urn:partner-center-upgrade:problem:"
CUSTOMER = "2f1c1e8a-3b7d-4c55-9a60-6f3c5d2e1a10"


def assert_untouched(sandbox: Sandbox) -> None:
    assert sandbox.partner_center.log == []
    assert sandbox.entra.log == []
    # the only Key Vault reads: the caller's key, checked before anything else (docs/design.md, "Callers")
    assert [r.path for r in sandbox.key_vault.log if "/secrets/caller-key-" not in r.path] == []


def assert_problem(answer_json: dict[str, object], status: int, slug: str, field: str | None = None) -> None:
    assert answer_json["status"] == status
    assert answer_json["type"] == PROBLEM + slug
    assert answer_json["title"] and answer_json["detail"] and answer_json["correlationId"]
    if field is not None:
        assert field in [e["field"] for e in answer_json["errors"]]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"{not json", "body"),
        (b"", "body"),
        (b"[1, 2, 3]", "body"),
        (b'"customerId"', "body"),
        (b"null", "body"),
        (b"\xff\xfe{\x00}", "body"),  # not UTF-8
        (b"[" * 5000 + b"]" * 5000, "body"),  # nested junk deeper than any parser limit
        (b'{"customerId": NaN, "productFamily": "Azure"}', "body"),
        (f'{{"customerId": "{CUSTOMER}", "customerId": "{CUSTOMER}", "productFamily": "Azure"}}'.encode(), "body"),
        (b'{"productFamily": "Azure"}', "customerId"),
        (b'{"customerId": "12345", "productFamily": "Azure"}', "customerId"),
        (b'{"customerId": 12345, "productFamily": "Azure"}', "customerId"),
        (b'{"customerId": "00000000-0000-0000-0000-000000000000", "productFamily": "Azure"}', "customerId"),
        (f'{{"customerId": "{CUSTOMER}"}}'.encode(), "productFamily"),
        (f'{{"customerId": "{CUSTOMER}", "productFamily": "Office"}}'.encode(), "productFamily"),
        (f'{{"customerId": "{CUSTOMER}", "productFamily": ["Azure"]}}'.encode(), "productFamily"),
        (f'{{"customerId": "{CUSTOMER}", "productFamily": "Azure", "admin": true}}'.encode(), "admin"),
        (b'{"customerId": {"nested": {"deep": [1, {"x": null}]}}, "productFamily": "Azure"}', "customerId"),
    ],
)
def test_malformed_bodies_are_400_naming_the_field(app: AppHarness, sandbox: Sandbox, raw: bytes, field: str) -> None:
    answer = app.post(raw=raw)

    assert answer.status == 400
    assert answer.content_type.startswith("application/problem+json")
    assert_problem(answer.json(), 400, "validation-failed", field)
    assert_untouched(sandbox)


def test_every_problem_in_a_body_is_reported_at_once(app: AppHarness, sandbox: Sandbox) -> None:
    answer = app.post({"customerId": "nope", "productFamily": "Dynamics", "extra": 1})

    fields = [e["field"] for e in answer.json()["errors"]]
    assert sorted(fields) == ["customerId", "extra", "productFamily"]
    assert_untouched(sandbox)


def test_input_values_are_not_reflected_in_the_error(app: AppHarness, sandbox: Sandbox) -> None:
    hostile = "<script>alert(1)</script>"
    answer = app.post({"customerId": hostile, "productFamily": hostile})

    assert answer.status == 400
    assert hostile not in answer.body.decode()
    assert_untouched(sandbox)


def test_a_body_over_16_kib_is_413(app: AppHarness, sandbox: Sandbox) -> None:
    padding = "x" * (16 * 1024)
    answer = app.post(raw=json.dumps({"customerId": CUSTOMER, "productFamily": "Azure", "pad": padding}).encode())

    assert answer.status == 413
    assert_problem(answer.json(), 413, "payload-too-large")
    assert_untouched(sandbox)


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"]
)
def test_a_body_that_is_not_json_by_content_type_is_415(
    app: AppHarness, sandbox: Sandbox, content_type: str | None
) -> None:
    answer = app.post({"customerId": CUSTOMER, "productFamily": "Azure"}, content_type=content_type)

    assert answer.status == 415
    assert_problem(answer.json(), 415, "unsupported-media-type")
    assert_untouched(sandbox)


@pytest.mark.parametrize("key", ["", "with space", "x" * 256, "tab\there", "ünïcode"])
def test_a_bad_idempotency_key_is_400(app: AppHarness, sandbox: Sandbox, key: str) -> None:
    answer = app.post({"customerId": CUSTOMER, "productFamily": "Azure"}, headers={"Idempotency-Key": key})

    assert answer.status == 400
    assert_problem(answer.json(), 400, "validation-failed", "Idempotency-Key")
    assert_untouched(sandbox)


def test_a_callback_url_while_callbacks_are_off_is_400(app: AppHarness, sandbox: Sandbox) -> None:
    answer = app.post({"customerId": CUSTOMER, "productFamily": "Azure", "callbackUrl": "https://hooks.example.com/x"})

    assert answer.status == 400
    assert "CALLBACK_ALLOWED_HOSTS" in answer.json()["errors"][0]["detail"]
    assert_untouched(sandbox)


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/x",  # not https
        "https://evil.example.net/x",  # not on the allow-list
        "https://127.0.0.1/x",  # IP literal
        "https://[::1]/x",
        "https://2130706433/x",  # 127.0.0.1 as a number
        "https://user:pass@hooks.example.com/x",
        "hooks.example.com/x",
        "https://example.com/x",  # *.example.com does not cover the apex
        12,
        # urlsplit reads the host as "127.0.0.1\\.example.com"; requests (urllib3) connects to 127.0.0.1:443.
        "https://127.0.0.1\\.example.com/x",
        "https://hooks.example.com\\@127.0.0.1/x",
        "https://hooks.example.com:8443/x",  # only 443 unless the entry names the port
        "https://hooks.example.com:443@127.0.0.1/x",
        "https://hooks%2eexample.com/x",  # %-escape in the host
        "https://127.0.0.1%2f.example.com/x",
        "https://hooks..example.com/x",  # empty label
        "https://hooks.example.com./x",
        "https://h\u00f6oks.example.com/x",  # non-ASCII (IDNA is not supported)
        "https://xn--hks-sna.example.com\t/x",  # control character
        "https://hooks.example.com\x7f/x",
        "https://hooks_1.example.com/x",
        "https://[::ffff:127.0.0.1]/x",
        "https://localhost:8443/x",
    ],
)
def test_a_callback_url_that_is_not_allowed_is_400(
    app: AppHarness, sandbox: Sandbox, configure: Callable[..., None], url: object
) -> None:
    configure(CALLBACK_ALLOWED_HOSTS="*.example.com,localhost")

    answer = app.post({"customerId": CUSTOMER, "productFamily": "Azure", "callbackUrl": url})

    assert answer.status == 400
    assert_problem(answer.json(), 400, "validation-failed", "callbackUrl")
    assert_untouched(sandbox)


def test_a_callback_url_on_a_port_the_allow_list_names_is_accepted(
    app: AppHarness, sandbox: Sandbox, configure: Callable[..., None]
) -> None:
    configure(CALLBACK_ALLOWED_HOSTS="*.example.com:8443,hooks.contoso.com:9000")
    customer = str(uuid.uuid4())

    accepted = app.post(
        {"customerId": customer, "productFamily": "Azure", "callbackUrl": "https://a.example.com:8443/x"}
    )
    refused = app.post({"customerId": customer, "productFamily": "Azure", "callbackUrl": "https://a.example.com/x"})

    assert accepted.status == 202, accepted.body
    assert refused.status == 400
    assert "port" in refused.json()["errors"][0]["detail"]


def test_get_with_a_malformed_id_is_400_and_touches_nothing(app: AppHarness, sandbox: Sandbox) -> None:
    answer = app.get("not-a-guid")

    assert answer.status == 400
    assert_problem(answer.json(), 400, "validation-failed", "upgradeId")
    assert_untouched(sandbox)


def test_get_with_a_malformed_customer_id_is_400(app: AppHarness, sandbox: Sandbox) -> None:
    answer = app.get(str(uuid.uuid4()), customer_id="12")

    assert answer.status == 400
    assert_problem(answer.json(), 400, "validation-failed", "customerId")
    assert_untouched(sandbox)


def test_get_with_an_empty_customer_id_is_400_not_a_lookup_without_one(app: AppHarness, sandbox: Sandbox) -> None:
    answer = app.get(str(uuid.uuid4()), customer_id="")  # `?customerId=`: the document's pattern forbids it

    assert answer.status == 400
    assert_problem(answer.json(), 400, "validation-failed", "customerId")
    assert_untouched(sandbox)


def storage_requests_naming(azurite: Azurite, name: str) -> list[str]:
    """Lines of Azurite's wire log naming `name`, read after a marker request has been logged (the log is
    written asynchronously, so without the marker a late line could be missed)."""
    marker = f"marker{uuid.uuid4().hex[:12]}"
    with contextlib.suppress(ResourceNotFoundError):
        TableClient.from_connection_string(azurite.connection_string, marker).get_entity("p", "r")
    deadline = time.monotonic() + 30
    while marker not in (log := azurite.debug_log.read_text(errors="replace")) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker in log
    return [line for line in log.splitlines() if name in line]


@pytest.mark.parametrize("suffix", ["\n", "\r\n", " ", "\x00"])
def test_get_with_an_upgrade_id_followed_by_a_newline_is_400_and_touches_nothing(
    app: AppHarness, sandbox: Sandbox, azurite: Azurite, app_env: dict[str, str], suffix: str
) -> None:
    # The host decodes the route: GET /api/upgrades/<guid>%0a arrives as "<guid>\n".
    answer = app.get(CUSTOMER + suffix, customer_id=CUSTOMER)

    assert answer.status == 400
    assert_problem(answer.json(), 400, "validation-failed", "upgradeId")
    assert_untouched(sandbox)
    assert storage_requests_naming(azurite, app_env["UPGRADES_TABLE"]) == []


def test_get_with_a_customer_id_followed_by_a_newline_is_400(app: AppHarness, sandbox: Sandbox) -> None:
    answer = app.get(str(uuid.uuid4()), customer_id=CUSTOMER + "\n")

    assert answer.status == 400
    assert_problem(answer.json(), 400, "validation-failed", "customerId")
    assert_untouched(sandbox)


def test_a_customer_id_followed_by_a_newline_is_400(app: AppHarness, sandbox: Sandbox) -> None:
    answer = app.post({"customerId": CUSTOMER + "\n", "productFamily": "Azure"})

    assert answer.status == 400
    assert_problem(answer.json(), 400, "validation-failed", "customerId")
    assert_untouched(sandbox)
