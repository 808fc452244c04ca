"""Callback URL rules (shared/tracking/callback_urls.py): which URLs the app will call, and why it refuses others."""

from __future__ import annotations

import pytest

from shared.callback_urls import AllowedHost, CallbackTarget, callback_target, parse_allowed_host

ALLOWED = ("hooks.contoso.com", "*.crm.contoso.com", "localhost:7072")


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [
        ("https://hooks.contoso.com/upgrades", "hooks.contoso.com", 443),
        ("https://HOOKS.contoso.com:443/x?y=1", "hooks.contoso.com", 443),
        ("https://eu.crm.contoso.com/in", "eu.crm.contoso.com", 443),
        ("https://localhost:7072/hook", "localhost", 7072),
    ],
)
def test_allowed_urls_connect_where_they_say(url: str, host: str, port: int) -> None:
    target = callback_target(url, ALLOWED)

    assert isinstance(target, CallbackTarget)
    assert (target.host, target.port) == (host, port)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://hooks.contoso.com/x", "absolute https URL"),
        ("https://evil.example/x", "not on the callback allow-list"),
        ("https://crm.contoso.com/x", "not on the callback allow-list"),  # *.suffix needs a label before it
        ("https://hooks.contoso.com:8443/x", "port is not allowed"),
        ("https://localhost/x", "port is not allowed"),
        ("https://127.0.0.1/x", "not an IP address"),
        ("https://2130706433/x", "not an IP address"),
        ("https://[::1]/x", "not an IP address"),
        ("https://user:pw@hooks.contoso.com/x", "credentials"),
        ("https://hooks.contoso.com/x#frag", "fragment"),
        ("https://127.0.0.1\\.hooks.contoso.com/", "backslash"),
        ("https://hooks.contoso.com/a b", "without spaces"),
        ("https://hooks.contoso.com:0/x", "port 0"),
        ("https://xn--bcher-kva.contoso.com/x", "not on the callback allow-list"),
        ("https://hooks%2econtoso.com/x", "every HTTP client reads the same way"),
        ("https://hooks_1.contoso.com/x", "plain ASCII host name"),
        ("https://hooks.contoso.com/" + "a" * 2048, "at most 2048"),
    ],
)
def test_refused_urls_say_why_without_repeating_the_url(url: str, reason: str) -> None:
    target = callback_target(url, ALLOWED)

    assert isinstance(target, str) and reason in target
    assert "contoso" not in target


def test_nothing_is_allowed_while_callbacks_are_off() -> None:
    target = callback_target("https://hooks.contoso.com/x", ())

    assert isinstance(target, str) and "CALLBACK_ALLOWED_HOSTS" in target


def test_a_non_string_is_refused() -> None:
    assert callback_target(42, ALLOWED) == "must be a string"


def test_an_exact_entry_wins_over_a_wildcard_that_also_admits_the_host() -> None:
    target = callback_target("https://a.hooks.example/x", ("*.hooks.example", "a.hooks.example"))

    assert isinstance(target, CallbackTarget) and target.allowed_by == AllowedHost("a.hooks.example")


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("Hooks.Contoso.com", AllowedHost("hooks.contoso.com")),
        ("*.crm.contoso.com:8443", AllowedHost("*.crm.contoso.com", 8443)),
        ("hooks.contoso.com:65536", None),
        ("*.*.contoso.com", None),
        ("hooks..contoso.com", None),
        ("[::1]:443", None),
    ],
)
def test_allow_list_entries(entry: str, expected: AllowedHost | None) -> None:
    assert parse_allowed_host(entry) == expected
