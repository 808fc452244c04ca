"""Settings parsing (shared/settings.py), pure: values are typed and normalised, and every problem is named in one
error that never repeats a value."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from shared.settings import ConfigurationError, Settings, StorageSettings

SECRET_LOOKING = "AccountKey=c2VjcmV0LXZhbHVl"


def test_values_are_typed_and_urls_lose_their_trailing_slash(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        PUBLIC_BASE_URL="https://api.contoso.com/",
        CHECK_ELIGIBILITY="No",
        STATUS_MAX_TRACKING_HOURS="0.5",
        PARTNER_CENTER_TIMEOUT_SECONDS="12.5",
        CALLBACK_ALLOWED_HOSTS="Hooks.Contoso.com, ,*.crm.contoso.com:8443",
    )

    assert settings.public_base_url == "https://api.contoso.com"
    assert settings.check_eligibility is False
    assert (settings.max_tracking_hours, settings.partner_center_timeout_seconds) == (0.5, 12.5)
    assert settings.callback_allowed_hosts == ("hooks.contoso.com", "*.crm.contoso.com:8443")
    assert settings.callbacks_enabled


def test_every_problem_is_named_at_once_and_no_value_is_repeated() -> None:
    env = {
        "KEY_VAULT_URL": "http://kv.example",
        "PARTNER_TENANT_ID": "not a tenant",
        "AzureWebJobsStorage": "",
        "STATUS_FIRST_CHECK_SECONDS": "ten",
        "STATUS_MAX_TRACKING_HOURS": "nan",
        "CHECK_ELIGIBILITY": SECRET_LOOKING,
    }

    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(env)

    message = str(caught.value)
    for name in ("KEY_VAULT_URL", "PARTNER_TENANT_ID", "AzureWebJobsStorage", "STATUS_FIRST_CHECK_SECONDS",
                 "STATUS_MAX_TRACKING_HOURS", "CHECK_ELIGIBILITY"):  # fmt: skip
        assert name in message
    assert SECRET_LOOKING not in message and "not a tenant" not in message


def test_the_first_check_may_not_come_after_the_longest_interval(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigurationError, match="must not exceed STATUS_MAX_INTERVAL_SECONDS"):
        make_settings(STATUS_FIRST_CHECK_SECONDS="120", STATUS_MAX_INTERVAL_SECONDS="60")


def test_identity_based_storage_derives_both_uris_from_the_account_name() -> None:
    env = {
        "KEY_VAULT_URL": "https://kv.vault.azure.net",
        "PARTNER_TENANT_ID": "6a1d2b1e-3c4d-4e5f-8a9b-0c1d2e3f4a5b",
        "CALLER_API_AUDIENCE": "api://partner-center-upgrades",
        "AzureWebJobsStorage__accountName": "contosoupgrades",
        "AzureWebJobsStorage__credential": "managedidentity",
    }

    assert Settings.from_env(env).storage == StorageSettings(
        queue_service_uri="https://contosoupgrades.queue.core.windows.net",
        table_service_uri="https://contosoupgrades.table.core.windows.net",
        credential="managedidentity",
    )


def test_a_connection_string_is_never_shown_in_the_settings_repr(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(AzureWebJobsStorage=f"DefaultEndpointsProtocol=https;{SECRET_LOOKING}")

    assert SECRET_LOOKING not in repr(settings)
