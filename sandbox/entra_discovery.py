"""Entra's discovery documents as the Entra stand-in serves them: instance discovery (MSAL) and OpenID metadata
(MSAL, and the app's token check, which finds `jwks_uri` there)."""

from __future__ import annotations

from typing import Any


def instance_metadata(url: str, host: str, tenant: str) -> dict[str, Any]:
    """The instance discovery answer MSAL asks for: this stand-in is its own (only) alias."""
    return {
        "tenant_discovery_endpoint": f"{url}/{tenant}/v2.0/.well-known/openid-configuration",
        "api-version": "1.1",
        "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
    }


def openid_configuration(url: str, tenant: str, issuer: str, version: str) -> dict[str, Any]:
    """The OpenID configuration of `tenant` (`version` "/v2.0" or "" for v1), endpoints on this stand-in."""
    base = f"{url}/{tenant}/oauth2{version}"
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{base}/authorize",
        "token_endpoint": f"{base}/token",
        "device_authorization_endpoint": f"{base}/devicecode",
        "end_session_endpoint": f"{base}/logout",
        "jwks_uri": f"{url}/{tenant}/discovery{version}/keys",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["plain", "S256"],
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "msgraph_host": "graph.microsoft.com",
    }
