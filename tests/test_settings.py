"""Settings are read once from the environment, with docs/design.md's names and defaults, and fail loudly."""

import logging
import uuid
from collections.abc import Callable

import pytest

from shared.settings import SETTINGS, ConfigurationError, Settings
from support.harness import AppHarness

REQUIRED = {
    "KEY_VAULT_URL": "https://contoso-kv.vault.azure.net/",
    "PARTNER_TENANT_ID": "contoso.onmicrosoft.com",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "CALLER_API_AUDIENCE": "7d0c7a41-3b9f-4a52-9c1e-6f2d8b4a1c30",
}


def test_defaults_are_the_documented_ones() -> None:
    settings = Settings.from_env(REQUIRED)

    assert settings.key_vault_url == "https://contoso-kv.vault.azure.net"
    assert settings.partner_center_base_url == "https://api.partnercenter.microsoft.com"
    assert settings.authority_host == "https://login.microsoftonline.com"
    assert (settings.app_id_secret, settings.app_secret_secret, settings.refresh_token_secret) == (
        "partner-center-app-id",
        "partner-center-app-secret",
        "partner-center-refresh-token",
    )
    assert settings.callback_signing_key_secret == "callback-signing-key"
    assert (settings.status_queue, settings.upgrades_table) == ("upgrade-status", "upgrades")
    assert settings.public_base_url is None
    assert settings.callback_allowed_hosts == ()
    assert settings.check_eligibility is True
    assert (settings.first_check_seconds, settings.max_interval_seconds, settings.max_tracking_hours) == (60, 900, 72)


def test_follow_link_batch_and_consent_settings_have_the_documented_defaults() -> None:
    settings = Settings.from_env(REQUIRED)

    assert settings.status_link_key_secret == "status-link-signing-key"
    assert settings.batch_queue == "upgrade-batch"
    assert settings.batch_calls_per_minute == 300
    assert settings.consent_check_schedule == "0 30 3 * * *"


def test_follow_link_batch_and_consent_settings_are_read_and_validated() -> None:
    chosen = {
        "STATUS_LINK_KEY_SECRET": "follow-key",
        "UPGRADE_BATCH_QUEUE": "fleet-work",
        "PARTNER_CENTER_BATCH_CALLS_PER_MINUTE": "120",
        "CONSENT_CHECK_SCHEDULE": "0 0 */6 * * *",
    }
    settings = Settings.from_env(REQUIRED | chosen)
    assert (settings.status_link_key_secret, settings.batch_queue) == ("follow-key", "fleet-work")
    assert (settings.batch_calls_per_minute, settings.consent_check_schedule) == (120, "0 0 */6 * * *")

    invalid = {
        "STATUS_LINK_KEY_SECRET": "no_underscores",
        "UPGRADE_BATCH_QUEUE": "No-Capitals",
        "PARTNER_CENTER_BATCH_CALLS_PER_MINUTE": "0",
        "CONSENT_CHECK_SCHEDULE": "30 3 * * *",  # five fields: a Unix cron, not NCRONTAB
    }
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(REQUIRED | invalid)
    for name in invalid:
        assert name in str(caught.value)


def test_callback_hosts_may_name_a_port() -> None:
    env = REQUIRED | {"CALLBACK_ALLOWED_HOSTS": " Hooks.Contoso.com:8443, *.crm.contoso.com ,localhost:7072"}

    settings = Settings.from_env(env)

    assert settings.callback_allowed_hosts == ("hooks.contoso.com:8443", "*.crm.contoso.com", "localhost:7072")


@pytest.mark.parametrize(
    "value", ["hooks.contoso.com:0", "hooks.contoso.com:65536", "hooks.contoso.com:", "*.contoso.com:https", ":443",
              "hooks..contoso.com", "*.*.contoso.com", "hooks.contoso.com:443:443", "[::1]:443"]
)  # fmt: skip
def test_a_bad_callback_host_entry_is_refused(value: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(REQUIRED | {"CALLBACK_ALLOWED_HOSTS": value})

    assert "CALLBACK_ALLOWED_HOSTS" in str(caught.value)


def test_every_problem_is_reported_at_once_by_name_without_values() -> None:
    env = {
        "KEY_VAULT_URL": "http://not-tls.example",
        "PARTNER_TENANT_ID": "not a tenant!",
        "STATUS_FIRST_CHECK_SECONDS": "soon",
        "CALLBACK_ALLOWED_HOSTS": "https://with-scheme.example",
        "UPGRADES_TABLE": "no-dashes-allowed",
    }
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(env)

    message = str(caught.value)
    for name in (
        "KEY_VAULT_URL",
        "PARTNER_TENANT_ID",
        "STATUS_FIRST_CHECK_SECONDS",
        "CALLBACK_ALLOWED_HOSTS",
        "UPGRADES_TABLE",
        "AzureWebJobsStorage",
    ):
        assert name in message
    assert "not-tls.example" not in message and "soon" not in message


def test_identity_based_storage_is_accepted_like_the_functions_host_reads_it() -> None:
    env = {k: v for k, v in REQUIRED.items() if k != "AzureWebJobsStorage"}
    env |= {
        "AzureWebJobsStorage__queueServiceUri": "https://acct.queue.core.windows.net",
        "AzureWebJobsStorage__tableServiceUri": "https://acct.table.core.windows.net",
        "AzureWebJobsStorage__credential": "managedidentity",
        "AzureWebJobsStorage__clientId": "11111111-2222-3333-4444-555555555555",
    }
    storage = Settings.from_env(env).storage

    assert storage.connection_string is None
    assert storage.queue_service_uri == "https://acct.queue.core.windows.net"
    assert storage.table_service_uri == "https://acct.table.core.windows.net"
    assert (storage.credential, storage.client_id) == ("managedidentity", "11111111-2222-3333-4444-555555555555")


def test_account_name_form_derives_the_service_uris() -> None:
    env = {k: v for k, v in REQUIRED.items() if k != "AzureWebJobsStorage"} | {
        "AzureWebJobsStorage__accountName": "acct"
    }
    storage = Settings.from_env(env).storage

    assert storage.table_service_uri == "https://acct.table.core.windows.net"


def test_the_connection_string_never_shows_in_a_repr() -> None:
    secret_key = "AccountKey=c2VjcmV0LWtleQ=="
    settings = Settings.from_env(REQUIRED | {"AzureWebJobsStorage": f"DefaultEndpointsProtocol=https;{secret_key}"})

    assert secret_key not in repr(settings)


def test_settings_table_lists_each_name_once() -> None:
    names = [spec.name for spec in SETTINGS]
    assert len(names) == len(set(names))


def test_a_misconfigured_app_answers_500_and_logs_the_setting_name_once(
    app: AppHarness, configure: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    configure(STATUS_MAX_INTERVAL_SECONDS="forever")

    answer = app.post({"customerId": str(uuid.uuid4()), "productFamily": "Azure"})

    assert answer.status == 500
    assert answer.json()["type"] == "urn:partner-center-upgrade:problem:configuration-error"
    assert "STATUS_MAX_INTERVAL_SECONDS" not in answer.body.decode()  # the caller learns nothing internal
    [error] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "STATUS_MAX_INTERVAL_SECONDS" in error.getMessage() and "forever" not in error.getMessage()
    assert error.exc_info is None


def test_a_misconfigured_app_leaves_queue_messages_for_the_host_to_retry(
    app: AppHarness, configure: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    app.enqueue({"upgradeId": str(uuid.uuid4()), "customerId": str(uuid.uuid4()), "productFamily": "Azure"})
    configure(PARTNER_TENANT_ID="not a tenant!")

    run = app.process_queue()

    assert run.failed == ["RetryLater: the app settings are invalid"]
    assert app.queued_count() == 1
    assert all(r.exc_info is None for r in caplog.records)
