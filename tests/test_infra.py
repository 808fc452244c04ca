"""The Bicep in infra/ deploys exactly the settings the app reads, and nothing that needs a key.

The app's .venv has no Bicep compiler and no checkov, so these tests read the Bicep as text;
`make infra-check` parses it (tree-sitter-bicep, pycep) and runs checkov in .venv-infra.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from shared.settings import SETTINGS, STORAGE_IDENTITY_SUFFIXES, Settings

INFRA = Path(__file__).resolve().parents[1] / "infra"
APP_BICEP = INFRA / "app.bicep"

# Settings the Bicep sets that shared/ does not read, each with the component that does.
PLATFORM_SETTINGS = {
    "AzureWebJobsStorage__blobServiceUri": "Functions host: leases, function keys and timers live in blobs",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "host and Python worker: ingestion endpoint (local auth is off)",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "host, azure-monitor exporter: Entra-only ingestion",
    "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "Python worker: OpenTelemetry export to App Insights",
    "AZURE_CLIENT_ID": "azure-identity: DefaultAzureCredential uses this user-assigned identity",
}

# Settings shared/ reads that Azure gets in another form.
REPLACED_SETTINGS = {
    "AzureWebJobsStorage": "connection-string form; Azure gets the identity-based AzureWebJobsStorage__*",
}

# Identity-based suffixes shared/ understands but the Bicep deliberately leaves out.
UNSET_STORAGE_SUFFIXES = {
    "accountName": "alternative to the service URIs, which the Bicep takes from the deployed account",
}

# App settings Flex Consumption rejects or ignores: runtime and deployment source live in functionAppConfig.
FLEX_UNSUPPORTED_SETTINGS = {
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "FUNCTIONS_WORKER_RUNTIME_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "ENABLE_ORYX_BUILD",
}

BUILT_IN_ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
}

_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_KEY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*:")


def _code(text: str) -> str:
    """`text` with comments and string contents blanked to spaces: same length and lines, so offsets match."""
    out = list(text)
    i = 0
    while i < len(text):
        if text.startswith(("//", "/*"), i):
            line_comment = text[i + 1] == "/"
            close = text.find("\n" if line_comment else "*/", i + 2)
            end = len(text) if close < 0 else close if line_comment else close + 2
            for j in range(i, end):
                out[j] = text[j] if text[j] == "\n" else " "
            i = end
        elif text[i] == "'":
            j = i + 1
            while j < len(text) and text[j] != "'":
                j += 2 if text[j] == "\\" else 1
            for k in range(i + 1, min(j, len(text))):
                out[k] = text[k] if text[k] == "\n" else " "
            i = j + 1
        else:
            i += 1
    return "".join(out)


def _balanced(code: str, opening_at: int) -> tuple[int, int]:
    """(start, end) of the text inside the bracket at `opening_at`, up to its matching closing bracket."""
    pairs = {"{": "}", "(": ")", "[": "]"}
    stack = [pairs[code[opening_at]]]
    for i in range(opening_at + 1, len(code)):
        if code[i] in pairs:
            stack.append(pairs[code[i]])
        elif code[i] == stack[-1]:
            stack.pop()
            if not stack:
                return opening_at + 1, i
    raise AssertionError(f"unbalanced bracket at offset {opening_at}")


def _declaration(text: str, header: str) -> str:
    """The code (comments and strings blanked) inside the bracket that ends the first match of `header`."""
    code = _code(text)
    match = re.search(header, code)
    assert match, f"{header!r} not found"
    start, end = _balanced(code, match.end() - 1)
    return code[start:end]


def _top_level_keys(body: str) -> list[str]:
    keys, depth, line_start = [], 0, True
    for i, char in enumerate(body):
        if line_start and depth == 0 and not char.isspace():
            match = _KEY.match(body, i)
            if match:
                keys.append(match.group(1))
        if char in "{([":
            depth += 1
        elif char in "})]":
            depth -= 1
        if char == "\n":
            line_start = True
        elif not char.isspace():
            line_start = False
    return keys


def _bicep_app_settings() -> tuple[list[str], list[str]]:
    """(always-set keys, set-when-chosen keys) of the app settings in app.bicep."""
    text = APP_BICEP.read_text()
    always = _top_level_keys(_declaration(text, r"\bvar appSettings\s*=\s*\{"))
    optional = re.findall(r"\{\s*([A-Za-z_]\w*)\s*:", _declaration(text, r"\bvar optionalAppSettings\s*=\s*union\("))
    return always, optional


def _expected_settings() -> set[str]:
    read = {spec.name for spec in SETTINGS} - REPLACED_SETTINGS.keys()
    storage = {f"AzureWebJobsStorage__{suffix}" for suffix in STORAGE_IDENTITY_SUFFIXES} - {
        f"AzureWebJobsStorage__{suffix}" for suffix in UNSET_STORAGE_SUFFIXES
    }
    return read | storage | PLATFORM_SETTINGS.keys()


def _bicep_files() -> list[Path]:
    files = sorted(INFRA.rglob("*.bicep"))
    assert files, "no Bicep files under infra/"
    return files


def _resources(text: str, resource_type: str) -> list[str]:
    """Source of the body of every `resource` of `resource_type` (any API version, conditional or not)."""
    code = _code(text)
    pattern = re.compile(rf"\bresource\s+\w+\s+'{re.escape(resource_type)}@[\w-]+'\s*=\s*(?:if\s*\(.*?\)\s*)?\{{")
    bodies = []
    for match in pattern.finditer(text):
        if code[match.start()] != "r":  # inside a comment
            continue
        start, end = _balanced(code, match.end() - 1)
        bodies.append(text[start:end])
    return bodies


def test_app_settings_are_exactly_what_the_app_reads_plus_documented_platform_settings() -> None:
    always, optional = _bicep_app_settings()
    in_bicep = always + optional

    assert len(in_bicep) == len(set(in_bicep)), "an app setting is set twice in app.bicep"
    missing = _expected_settings() - set(in_bicep)
    dead = set(in_bicep) - _expected_settings()
    assert not missing, f"shared/ reads settings that app.bicep does not set: {sorted(missing)}"
    assert not dead, f"app.bicep sets settings nothing reads (platform ones go in PLATFORM_SETTINGS): {sorted(dead)}"


def test_the_settings_object_is_what_the_site_gets() -> None:
    text = APP_BICEP.read_text()
    (site,) = _resources(text, "Microsoft.Web/sites")

    assert re.search(
        r"appSettings\s*:\s*\[\s*for\s+(\w+)\s+in\s+items\(\s*union\(\s*appSettings\s*,\s*optionalAppSettings\s*\)\s*\)"
        r"\s*:\s*\{\s*name\s*:\s*\1\.key\s+value\s*:\s*\1\.value\s*\}\s*\]",
        site,
    ), "the site's siteConfig.appSettings must be built from appSettings + optionalAppSettings"
    assert not _resources(text, "Microsoft.Web/sites/config"), "a second source of app settings replaces them"


@pytest.mark.parametrize("value", [None, "", "   "])
def test_settings_set_only_when_chosen_are_ones_the_app_treats_as_unset(value: str | None) -> None:
    _, optional = _bicep_app_settings()
    base = {
        "KEY_VAULT_URL": "https://kv-test.vault.azure.net/",
        "PARTNER_TENANT_ID": "contoso.onmicrosoft.com",
        "AzureWebJobsStorage__queueServiceUri": "https://sttest.queue.core.windows.net/",
        "AzureWebJobsStorage__tableServiceUri": "https://sttest.table.core.windows.net/",
    }
    assert optional, "app.bicep sets PUBLIC_BASE_URL / CALLBACK_ALLOWED_HOSTS only when chosen"
    for name in optional:
        env = {key: setting for key, setting in base.items() if key != name}
        if value is not None:
            env[name] = value
        settings = Settings.from_env(env)  # ConfigurationError: the app needs a value, so always set it
        assert settings.public_base_url is None
        assert not settings.callbacks_enabled


def test_no_setting_flex_consumption_rejects() -> None:
    always, optional = _bicep_app_settings()

    assert not (set(always + optional) & FLEX_UNSUPPORTED_SETTINGS)


def test_function_app_is_flex_consumption_python_313_deployed_with_the_identity() -> None:
    code = APP_BICEP.read_text()

    assert re.search(r"tier:\s*'FlexConsumption'\s+name:\s*'FC1'|name:\s*'FC1'\s+tier:\s*'FlexConsumption'", code)
    assert re.search(r"runtime:\s*\{\s*name:\s*'python'\s+version:\s*'3\.13'\s*\}", code)
    assert re.search(r"authentication:\s*\{\s*type:\s*'UserAssignedIdentity'\s+userAssignedIdentityResourceId:", code)
    assert re.search(r"maximumInstanceCount:\s*maximumInstanceCount\s+instanceMemoryMB:\s*instanceMemoryMB", code)
    for setting in (
        "httpsOnly: true",
        "minTlsVersion: '1.2'",
        "ftpsState: 'Disabled'",
        "type: 'UserAssigned'",
    ):
        assert setting in code
    policies = re.findall(
        r"resource\s+\w+\s+'Microsoft\.Web/sites/basicPublishingCredentialsPolicies@[\w-]+'\s*=\s*\{\s*"
        r"parent:\s*functionApp\s+name:\s*'(ftp|scm)'\s+properties:\s*\{\s*allow:\s*false\s*\}",
        code,
    )
    assert sorted(policies) == ["ftp", "scm"]


def test_every_role_assignment_is_named_by_guid_and_typed() -> None:
    assignments = [
        body
        for path in _bicep_files()
        for body in _resources(path.read_text(), "Microsoft.Authorization/roleAssignments")
    ]

    assert len(assignments) >= len(BUILT_IN_ROLES)
    for body in assignments:
        assert re.search(r"^\s*name:\s*guid\(", body, re.MULTILINE), body
        assert re.search(r"^\s*principalType:\s*\S", body, re.MULTILINE), body
        assert re.search(r"^\s*scope:\s*\w+", body, re.MULTILINE), body


def test_roles_are_the_built_in_ones_the_identity_needs() -> None:
    rbac_text = (INFRA / "rbac.bicep").read_text()

    used = set(re.findall(r"roleDefinitions'\s*,\s*'(" + _GUID.pattern + ")'", rbac_text))
    assert used == set(BUILT_IN_ROLES), {guid: BUILT_IN_ROLES.get(guid, "unknown role") for guid in used}
    assignments = _resources(rbac_text, "Microsoft.Authorization/roleAssignments")
    identity_roles = [body for body in assignments if "identityPrincipalId" in body]
    assert len(identity_roles) == len(BUILT_IN_ROLES)
    assert all("principalType: 'ServicePrincipal'" in body for body in identity_roles)


_FORBIDDEN = re.compile(
    r"listKeys\(|listAccountSas\(|listServiceSas\(|AccountKey=|SharedAccessSignature|DefaultEndpointsProtocol"
    r"|connectionString|InstrumentationKey|@secure\(\)",
    re.IGNORECASE,
)
# The one connection string in infra/: Application Insights' ingestion endpoint. With DisableLocalAuth its
# instrumentation key authorizes nothing; ingestion needs the identity's Entra token.
_ALLOWED_LINE = "APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString"


def test_no_keys_connection_strings_or_secrets_anywhere_in_infra() -> None:
    files = [*_bicep_files(), *sorted(INFRA.rglob("*.json"))]
    offending = [
        f"{path.name}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if _FORBIDDEN.search(line) and line.strip() != _ALLOWED_LINE
    ]

    assert not offending, offending
    assert re.search(r"allowSharedKeyAccess:\s*false", (INFRA / "storage.bicep").read_text())
    assert re.search(r"DisableLocalAuth:\s*true", (INFRA / "monitoring.bicep").read_text())


def test_key_vault_is_rbac_only_soft_deleted_and_purge_protected() -> None:
    code = (INFRA / "keyvault.bicep").read_text()

    for setting in ("enableRbacAuthorization: true", "enableSoftDelete: true", "enablePurgeProtection: true"):
        assert setting in code
    assert "accessPolicies" not in code


def test_queue_poison_queue_and_table_names_are_the_contract_defaults() -> None:
    defaults = {spec.name: spec.default for spec in SETTINGS}
    main = (INFRA / "main.bicep").read_text()
    storage = (INFRA / "storage.bicep").read_text()

    assert f"var statusQueueName = '{defaults['UPGRADE_STATUS_QUEUE']}'" in main
    assert f"var upgradesTableName = '{defaults['UPGRADES_TABLE']}'" in main
    assert "name: '${statusQueueName}-poison'" in storage
    for resource_type in ("queueServices/queues", "tableServices/tables", "blobServices/containers"):
        assert f"'Microsoft.Storage/storageAccounts/{resource_type}@" in storage


def test_parameters_file_matches_main_bicep() -> None:
    code = _code((INFRA / "main.bicep").read_text())
    params = dict(re.findall(r"^param\s+(\w+)\s+\w+(\s*=.*)?$", code, re.MULTILINE))
    supplied = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]

    assert set(supplied) <= set(params), set(supplied) - set(params)
    required = {name for name, default in params.items() if not default}
    assert required <= set(supplied), required - set(supplied)
    assert supplied["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    assert supplied["location"]["value"] == "${AZURE_LOCATION}"
    assert supplied["partnerTenantId"]["value"] == "${PARTNER_TENANT_ID}"
    assert supplied["principalId"]["value"] == "${AZURE_PRINCIPAL_ID}"


def test_every_checkov_skip_is_justified_inside_a_resource() -> None:
    for path in _bicep_files():
        text = path.read_text()
        for match in re.finditer(r"checkov:skip=([A-Z0-9_]+)(?::(.*))?", text):
            check, justification = match.group(1), (match.group(2) or "").strip()
            assert len(justification) >= 40, f"{path.name}: {check} needs a real justification"
            before = _code(text[: match.start()])
            assert before.count("{") > before.count("}"), f"{path.name}: {check}: skip outside a resource"
