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

# App settings Flex Consumption rejects or ignores: runtime and deployment source live in functionAppConfig
# (learn.microsoft.com azure-functions/functions-app-settings#flex-consumption-plan-deprecations).
FLEX_UNSUPPORTED_SETTINGS = {
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "FUNCTIONS_WORKER_RUNTIME_VERSION",
    "FUNCTIONS_MAX_HTTP_CONCURRENCY",
    "FUNCTIONS_WORKER_PROCESS_COUNT",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT",
    "WEBSITE_TIME_ZONE",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "ENABLE_ORYX_BUILD",
}

# siteConfig properties ARM refuses on a Flex Consumption site (BadRequest, ExtendedCode 51021 "The following site
# configuration property (Site.SiteConfig.X) for Flex Consumption sites is invalid"): the runtime lives in
# functionAppConfig, FTP is switched off with the ftp basicPublishingCredentialsPolicy.
FLEX_REJECTED_SITE_CONFIG = {
    "linuxFxVersion",
    "windowsFxVersion",
    "netFrameworkVersion",
    "pythonVersion",
    "alwaysOn",
    "ftpsState",
    "use32BitWorkerProcess",
    "preWarmedInstanceCount",
    "functionAppScaleLimit",
    "functionsRuntimeScaleMonitoringEnabled",
}

# References whose value ARM knows only while it deploys (resource properties, module outputs, list*()).
_RUNTIME_VALUE = re.compile(r"\.properties\b|\.outputs\b|\breference\(|\blist\w*\(")

BUILT_IN_ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
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
    optional_line = re.search(r"^var optionalAppSettings\s*=(.*)$", _code(text), re.MULTILINE)
    assert optional_line, "app.bicep declares var optionalAppSettings on one line"
    optional = re.findall(r"\{\s*([A-Za-z_]\w*)\s*:", optional_line.group(1))
    return always, optional


def _app_setting_values() -> dict[str, str]:
    """Each always-set app setting's value expression, as written in app.bicep (one line each)."""
    text = APP_BICEP.read_text()
    code = _code(text)
    match = re.search(r"\bvar appSettings\s*=\s*\{", code)
    assert match
    start, end = _balanced(code, match.end() - 1)
    return dict(re.findall(r"^\s*([A-Za-z_]\w*)\s*:\s*(.+?)\s*$", text[start:end], re.MULTILINE))


def _runtime_names(code: str) -> set[str]:
    """Variables of `code` (comments and strings blanked) whose value depends on a deployment-time value."""
    declarations = {}
    for match in re.finditer(r"^var\s+(\w+)\s*=", code, re.MULTILINE):
        following = re.compile(r"^(?:var|param|resource|module|output|func|type)\s", re.MULTILINE)
        end = following.search(code, match.end())
        declarations[match.group(1)] = code[match.end() : end.start() if end else len(code)]
    runtime = {name for name, body in declarations.items() if _RUNTIME_VALUE.search(body)}
    grown = True
    while grown:
        grown = False
        for name, body in declarations.items():
            if name not in runtime and any(re.search(rf"\b{other}\b", body) for other in runtime):
                runtime.add(name)
                grown = True
    return runtime


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


def test_the_settings_object_is_what_the_site_gets_through_one_appsettings_resource() -> None:
    text = APP_BICEP.read_text()
    (site,) = _resources(text, "Microsoft.Web/sites")
    (config,) = _resources(text, "Microsoft.Web/sites/config")

    # siteConfig.appSettings would be a second source, and with runtime values it needs a for-loop (BCP178).
    assert "appSettings" not in _top_level_keys(_declaration(site, r"\bsiteConfig\s*:\s*\{"))
    assert re.search(r"^\s*parent:\s*functionApp\s*$", config, re.MULTILINE)
    assert re.search(r"^\s*name:\s*'appsettings'\s*$", config, re.MULTILINE)
    properties = r"^\s*properties:\s*union\(\s*appSettings\s*,\s*optionalAppSettings\s*\)\s*$"
    assert re.search(properties, config, re.MULTILINE)


def test_no_for_loop_ranges_over_a_value_known_only_at_deployment() -> None:
    """A for-expression's range must be known when the deployment starts (Bicep BCP178)."""
    for path in _bicep_files():
        code = _code(path.read_text())
        runtime = _runtime_names(code)
        for loop in re.finditer(r"\[\s*for\s+(?:\w+|\(\s*\w+\s*,\s*\w+\s*\))\s+in\s+", code):
            depth, end = 0, loop.end()
            while end < len(code) and not (depth == 0 and code[end] == ":"):
                depth += code[end] in "([{"
                depth -= code[end] in ")]}"
                end += 1
            iterated = code[loop.end() : end]
            assert not _RUNTIME_VALUE.search(iterated), f"{path.name}: for-loop over {iterated.strip()!r}"
            assert not any(re.search(rf"\b{name}\b", iterated) for name in runtime), (
                f"{path.name}: for-loop over {iterated.strip()!r}, which depends on a deployment-time value"
            )


def test_the_runtime_value_check_sees_the_loop_that_broke_azd_up() -> None:
    broken = """
var appSettings = {
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
}
var merged = union(appSettings, {})
"""
    assert _runtime_names(_code(broken)) == {"appSettings", "merged"}


def test_public_base_url_is_always_the_external_base_or_the_sites_own_host_name() -> None:
    always, optional = _bicep_app_settings()
    value = _app_setting_values()["PUBLIC_BASE_URL"]

    assert "PUBLIC_BASE_URL" in always and "PUBLIC_BASE_URL" not in optional
    assert re.fullmatch(
        r"empty\(publicBaseUrl\)\s*\?\s*'https://\$\{functionApp\.properties\.defaultHostName\}'\s*:\s*publicBaseUrl",
        value,
    ), value


def test_contract_names_in_app_settings_are_the_settings_defaults() -> None:
    values = _app_setting_values()
    defaults = {spec.name: spec.default for spec in SETTINGS}
    literal = {name: value.strip("'") for name, value in values.items() if re.fullmatch(r"'[^'$]*'", value)}
    secret_names = {name for name in defaults if name.endswith("_SECRET")}

    for name in secret_names:
        assert name in values, name
        if name in literal:
            assert literal[name] == defaults[name], name
    main = (INFRA / "main.bicep").read_text()
    assert values["PARTNER_CENTER_REFRESH_TOKEN_SECRET"] == "refreshTokenSecretName"
    assert f"var refreshTokenSecretName = '{defaults['PARTNER_CENTER_REFRESH_TOKEN_SECRET']}'" in main
    assert f"var defaultConsentCheckSchedule = '{defaults['CONSENT_CHECK_SCHEDULE']}'" in main
    assert values["CONSENT_CHECK_SCHEDULE"] == "consentCheckSchedule"
    assert re.search(
        r"consentCheckSchedule:\s*empty\(consentCheckSchedule\)\s*\?\s*defaultConsentCheckSchedule\s*:\s*consentCheckSchedule",
        main,
    )
    batch_default = re.search(r"^param partnerCenterBatchCallsPerMinute int = (\d+)$", main, re.MULTILINE)
    assert batch_default and batch_default.group(1) == defaults["PARTNER_CENTER_BATCH_CALLS_PER_MINUTE"]


@pytest.mark.parametrize("value", [None, "", "   "])
def test_settings_set_only_when_chosen_are_ones_the_app_treats_as_unset(value: str | None) -> None:
    _, optional = _bicep_app_settings()
    base = {
        "KEY_VAULT_URL": "https://kv-test.vault.azure.net/",
        "PARTNER_TENANT_ID": "contoso.onmicrosoft.com",
        "AzureWebJobsStorage__queueServiceUri": "https://sttest.queue.core.windows.net/",
        "AzureWebJobsStorage__tableServiceUri": "https://sttest.table.core.windows.net/",
        "CALLER_API_AUDIENCE": "7d0c7a41-3b9f-4a52-9c1e-6f2d8b4a1c30",
    }
    assert optional == ["CALLBACK_ALLOWED_HOSTS"], "app.bicep sets CALLBACK_ALLOWED_HOSTS only when chosen"
    for name in optional:
        env = {key: setting for key, setting in base.items() if key != name}
        if value is not None:
            env[name] = value
        settings = Settings.from_env(env)  # ConfigurationError: the app needs a value, so always set it
        assert not settings.callbacks_enabled


def test_no_setting_flex_consumption_rejects() -> None:
    always, optional = _bicep_app_settings()

    assert not (set(always + optional) & FLEX_UNSUPPORTED_SETTINGS)


def test_no_site_config_property_flex_consumption_rejects() -> None:
    (site,) = _resources(APP_BICEP.read_text(), "Microsoft.Web/sites")
    site_config = _top_level_keys(_declaration(site, r"\bsiteConfig\s*:\s*\{"))

    assert site_config, "siteConfig has no properties: did the parser miss it?"
    assert not set(site_config) & FLEX_REJECTED_SITE_CONFIG, sorted(set(site_config) & FLEX_REJECTED_SITE_CONFIG)


def test_function_app_is_flex_consumption_python_313_deployed_with_the_identity() -> None:
    code = APP_BICEP.read_text()

    assert re.search(r"tier:\s*'FlexConsumption'\s+name:\s*'FC1'|name:\s*'FC1'\s+tier:\s*'FlexConsumption'", code)
    assert re.search(r"runtime:\s*\{\s*name:\s*'python'\s+version:\s*'3\.13'\s*\}", code)
    assert re.search(r"authentication:\s*\{\s*type:\s*'UserAssignedIdentity'\s+userAssignedIdentityResourceId:", code)
    assert re.search(r"maximumInstanceCount:\s*maximumInstanceCount\s+instanceMemoryMB:\s*instanceMemoryMB", code)
    for setting in (
        "httpsOnly: true",
        "minTlsVersion: '1.2'",
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


def _role_variables(rbac_text: str) -> dict[str, str]:
    """Role variable name -> role name, from `var x = subscriptionResourceId('…roleDefinitions', '<guid>')`."""
    declaration = r"^var\s+(\w+)\s*=\s*subscriptionResourceId\([^,]+,\s*'(" + _GUID.pattern + r")'\)"
    pairs = re.findall(declaration, rbac_text, re.MULTILINE)
    return {variable: BUILT_IN_ROLES.get(guid, f"unknown role {guid}") for variable, guid in pairs}


def _identity_grants(rbac_text: str) -> list[tuple[str, str, str]]:
    """(role name, scope, condition or '') of every role assignment to the app's identity."""
    roles = _role_variables(rbac_text)
    pattern = re.compile(
        r"resource\s+\w+\s+'Microsoft\.Authorization/roleAssignments@[\w-]+'\s*=\s*(?:if\s*\((.*?)\)\s*)?\{"
    )
    grants = []
    for match in pattern.finditer(rbac_text):
        start, end = _balanced(_code(rbac_text), match.end() - 1)
        body = rbac_text[start:end]
        if "principalId: identityPrincipalId" not in body:
            continue
        role = re.search(r"roleDefinitionId:\s*(\w+)", body)
        scope = re.search(r"^\s*scope:\s*(\w+)", body, re.MULTILINE)
        assert role and scope, body
        grants.append((roles[role.group(1)], scope.group(1), (match.group(1) or "").strip()))
    return grants


def test_roles_are_the_built_in_ones_the_identity_needs() -> None:
    rbac_text = (INFRA / "rbac.bicep").read_text()

    used = set(re.findall(r"roleDefinitions'\s*,\s*'(" + _GUID.pattern + ")'", rbac_text))
    assert used == set(BUILT_IN_ROLES), {guid: BUILT_IN_ROLES.get(guid, "unknown role") for guid in used}
    assert {role for role, _, _ in _identity_grants(rbac_text)} == set(BUILT_IN_ROLES.values())
    identity_roles = [
        body
        for body in _resources(rbac_text, "Microsoft.Authorization/roleAssignments")
        if "identityPrincipalId" in body
    ]
    assert all("principalType: 'ServicePrincipal'" in body for body in identity_roles)


def test_the_app_writes_to_key_vault_only_as_narrowly_as_the_secret_allows() -> None:
    rbac_text = (INFRA / "rbac.bicep").read_text()
    key_vault_grants = sorted(grant for grant in _identity_grants(rbac_text) if grant[0].startswith("Key Vault"))

    # Reads everywhere in the vault; writes on the refresh-token secret once it exists, on the vault until then.
    assert key_vault_grants == [
        ("Key Vault Secrets Officer", "refreshTokenSecret", "refreshTokenSecretExists"),
        ("Key Vault Secrets Officer", "vault", "!refreshTokenSecretExists"),
        ("Key Vault Secrets User", "vault", ""),
    ]
    secret = re.search(
        r"resource\s+refreshTokenSecret\s+'Microsoft\.KeyVault/vaults/secrets@[\w-]+'\s+existing\s*=\s*\{"
        r"\s*parent:\s*vault\s+name:\s*refreshTokenSecretName\s*\}",
        rbac_text,
    )
    assert secret, "the refresh-token secret is referenced as existing, by the name the app reads"
    assert re.search(r"^param refreshTokenSecretExists bool = false$", rbac_text, re.MULTILINE)


def test_no_bicep_creates_or_overwrites_a_secret() -> None:
    """A secret resource in a template writes its value on every deployment: the consent tool owns them all."""
    declared = re.compile(r"\bresource\s+\w+\s+'Microsoft\.KeyVault/vaults/secrets@[\w-]+'\s*(existing\b)?")
    for path in _bicep_files():
        code = path.read_text()
        for match in declared.finditer(code):
            if _code(code)[match.start()] != "r":  # inside a comment
                continue
            assert match.group(1), f"{path.name}: {match.group(0)} creates a secret"


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
    assert f"var batchQueueName = '{defaults['UPGRADE_BATCH_QUEUE']}'" in main
    assert f"var upgradesTableName = '{defaults['UPGRADES_TABLE']}'" in main
    queues = [
        name
        for body in _resources(storage, "Microsoft.Storage/storageAccounts/queueServices/queues")
        for name in re.findall(r"^\s*name:\s*(.+?)\s*$", body, re.MULTILINE)
    ]
    assert sorted(queues) == sorted(
        ["statusQueueName", "'${statusQueueName}-poison'", "batchQueueName", "'${batchQueueName}-poison'"]
    )
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


def test_azd_builds_the_app_remotely_for_python_and_requirements_refuse_another_python() -> None:
    azure_yaml = (INFRA.parent / "azure.yaml").read_text()
    requirements = (INFRA.parent / "requirements.txt").read_text()

    service = re.search(r"^  api:\n((?:    .*\n|\s*\n)+)", azure_yaml, re.MULTILINE)
    assert service, "azure.yaml has a services.api block"
    keys = dict(re.findall(r"^    (\w+):\s*(\S+)\s*$", service.group(1), re.MULTILINE))
    assert (keys["language"], keys["host"], keys["remoteBuild"]) == ("python", "function", "true")
    # azure-functions 2.x requires Python >= 3.13: a remote build on an older Python fails instead of deploying.
    pinned = re.search(r"^azure-functions==(\d+)\.", requirements, re.MULTILINE)
    assert pinned and int(pinned.group(1)) >= 2


ALERTS_BICEP = INFRA / "alerts.bicep"

# The log lines the alert rules match, fixed with the app engineers (docs/design.md "Consent keep-alive, health and
# alerts"): (severityLevel, message). Application Insights severityLevel: 2 Warning, 3 Error, 4 Critical.
CONSENT_LINES = [
    (3, "token exchange refused: problemType=urn:partner-center-upgrade:problem:consent-required AADSTS700082"),
    (3, "KeepConsentAlive: access token has no MFA claim problemType=urn:partner-center-upgrade:problem:mfa-required"),
    (4, "problemType=urn:partner-center-upgrade:problem:sam-consent-required"),
]
NOT_CONSENT_LINES = [
    (3, "problemType=urn:partner-center-upgrade:problem:configuration-error"),
    (3, "problemType=urn:partner-center-upgrade:problem:consent-required-soon"),
    (2, "problemType=urn:partner-center-upgrade:problem:consent-required"),  # a warning, not the ERROR
    (3, "problemType=urn:other-product:problem:consent-required"),
]
POISON_LINES = [
    (2, "Message has reached MaxDequeueCount of 5. Moving message to queue 'upgrade-status-poison'."),
    (2, "Message has reached MaxDequeueCount of 5. Moving message to queue 'upgrade-batch-poison'."),
    (3, "UpgradeStatus message 1f2e refused (customerId is not a GUID); moving it to the poison queue"),
]
NOT_POISON_LINES = [
    (1, "Message has reached MaxDequeueCount of 5."),
    (1, "Moving message to queue 'upgrade-status'."),
    (1, "UpgradeStatus message 1f2e refused; moving it to the poison queue"),  # not an ERROR
]


def _multiline_var(text: str, name: str) -> str:
    match = re.search(rf"^var {name} = '''\n(.*?)'''$", text, re.MULTILINE | re.DOTALL)
    assert match, f"alerts.bicep: var {name} = '''...''' not found"
    return match.group(1)


def _kql_regexes(query: str) -> list[re.Pattern[str]]:
    return [re.compile(pattern) for pattern in re.findall(r'matches regex @"((?:[^"]|"")*)"', query)]


def _kql_contains(query: str) -> list[str]:
    return re.findall(r'\bcontains "([^"]*)"', query)


def test_consent_alert_query_matches_exactly_the_consent_and_mfa_error_lines() -> None:
    query = _multiline_var(ALERTS_BICEP.read_text(), "consentQuery")
    (pattern,) = _kql_regexes(query)
    assert re.search(r"\|\s*where severityLevel >= 3\s*$", query, re.MULTILINE), "only ERROR and above"

    def selected(severity: int, message: str) -> bool:
        return severity >= 3 and bool(pattern.search(message))

    assert all(selected(*line) for line in CONSENT_LINES)
    assert not any(selected(*line) for line in NOT_CONSENT_LINES)
    assert query.lstrip().startswith("traces\n")


def test_poison_alert_query_matches_the_hosts_line_and_the_apps_error() -> None:
    query = _multiline_var(ALERTS_BICEP.read_text(), "poisonQuery")
    (host_pattern,) = _kql_regexes(query)
    (app_phrase,) = _kql_contains(query)
    assert re.search(rf'or \(severityLevel >= 3 and message contains "{re.escape(app_phrase)}"\)', query)

    def selected(severity: int, message: str) -> bool:
        return bool(host_pattern.search(message)) or (severity >= 3 and app_phrase.lower() in message.lower())

    assert all(selected(*line) for line in POISON_LINES)
    assert not any(selected(*line) for line in NOT_POISON_LINES)
    extract = re.search(r"""extract\(@"(.*?)", 1, message\)""", query)
    assert extract
    queue = re.search(extract.group(1), POISON_LINES[0][1])
    assert queue and queue.group(1) == "upgrade-status-poison"


def _alert_rules() -> dict[str, str]:
    text = ALERTS_BICEP.read_text()
    pattern = re.compile(r"\bresource\s+(\w+)\s+'Microsoft\.Insights/scheduledQueryRules@([\w-]+)'\s*=\s*\{")
    code = _code(text)
    rules = {}
    for match in pattern.finditer(text):
        start, end = _balanced(code, match.end() - 1)
        rules[match.group(1)] = text[start:end]
    return rules


def test_error_rate_alert_is_5xx_over_all_requests_in_15_minutes_above_5_percent_with_a_minimum_count() -> None:
    text = ALERTS_BICEP.read_text()
    rule = _alert_rules()["serverErrorRateAlert"]
    lines = re.search(r"^var serverErrorRateLines = \[\n(.*?)^\]$", text, re.MULTILINE | re.DOTALL)
    assert lines
    query = [line.strip().strip("'") for line in lines.group(1).splitlines()]

    assert query[0] == "requests"
    assert "countif(toint(resultCode) >= 500)" in query[1] and "total = count()" in query[1]
    assert query[2] == "| where total >= ${minimumRequestsForErrorRate}"
    assert query[3] == "| extend failedPercent = 100.0 * failed / total"
    minimum = re.search(r"^param minimumRequestsForErrorRate int = (\d+)$", text, re.MULTILINE)
    assert minimum and int(minimum.group(1)) >= 10, "1 failure out of 2 requests must not page anyone"
    assert re.search(r"^param serverErrorPercentThreshold int = 5$", text, re.MULTILINE)
    for setting in (
        "windowSize: 'PT15M'",
        "metricMeasureColumn: 'failedPercent'",
        "operator: 'GreaterThan'",
        "threshold: serverErrorPercentThreshold",
        "query: serverErrorRateQuery",
    ):
        assert setting in rule, setting


def test_every_alert_rule_watches_application_insights_and_notifies_the_action_group() -> None:
    rules = _alert_rules()

    assert set(rules) == {"consentAlert", "poisonAlert", "serverErrorRateAlert"}
    for name, body in rules.items():
        assert re.search(r"scopes:\s*\[\s*applicationInsights\.id\s*\]", body), name
        assert re.search(r"actionGroups:\s*\[\s*actionGroup\.id\s*\]", body), name
        assert re.search(r"^\s*severity:\s*[0-4]$", body, re.MULTILINE), name
        assert "README.md" in body, f"{name}: the description points to the runbook"
        if "muteActionsDuration" in body:  # Azure Monitor mutes actions only for rules that do not auto-resolve
            assert "autoMitigate: false" in body, name
    queries = {query for body in rules.values() for query in re.findall(r"query:\s*(\w+)", body)}
    assert queries == {"consentQuery", "poisonQuery", "serverErrorRateQuery"}


def test_action_group_mails_the_operator_only_when_an_address_is_given() -> None:
    text = ALERTS_BICEP.read_text()
    (group,) = _resources(text, "Microsoft.Insights/actionGroups")
    main = (INFRA / "main.bicep").read_text()
    supplied = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]

    assert "location: 'global'" in group
    assert re.search(r"emailReceivers:\s*empty\(alertEmail\)\s*\?\s*\[\]\s*:\s*operatorEmail", group)
    assert re.search(r"emailAddress:\s*alertEmail", text)
    assert re.search(r"^param alertEmail string = ''$", text, re.MULTILINE)
    assert re.search(r"^param alertEmail string = ''$", main, re.MULTILINE)
    assert "module alerts 'alerts.bicep' = {" in main
    assert re.search(r"\balertEmail:\s*alertEmail\b", _declaration(main, r"\bmodule alerts\s+'[^']*'\s*=\s*\{"))
    assert supplied["alertEmail"]["value"] == "${ALERT_EMAIL=}"
