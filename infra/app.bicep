// The function app on the Flex Consumption plan (FC1), Python 3.13, run as one user-assigned managed
// identity. Runtime and deployment source live in functionAppConfig: Flex apps carry no
// FUNCTIONS_WORKER_RUNTIME / FUNCTIONS_EXTENSION_VERSION / WEBSITE_RUN_FROM_PACKAGE app settings.

param name string
param planName string
param location string
param tags object = {}

@description('azd service name (azure.yaml services.<name>); azd finds the app by this tag.')
param serviceName string = 'api'

@description('Resource id of the user-assigned managed identity.')
param identityId string

@description('Client id of the user-assigned managed identity.')
param identityClientId string

@description('Primary endpoints of the storage account (end with /).')
param blobEndpoint string
param queueEndpoint string
param tableEndpoint string

param deploymentContainerName string
param applicationInsightsName string
param keyVaultUri string
param statusQueueName string
param batchQueueName string
param upgradesTableName string

@description('Key Vault secret names (docs/design.md "Settings"); the refresh token one is also the scope of a role in rbac.bicep.')
param refreshTokenSecretName string

@description('Upper bound of scale-out; keeps bursts within Partner Center throttling.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

// ---- settings a partner chooses (see main.bicep for descriptions)
param partnerTenantId string
param partnerCenterBaseUrl string
param authorityHost string
@description('External base URL for Location. Empty = https://<the site\'s default host name>.')
param publicBaseUrl string = ''
param callbackAllowedHosts string = ''
param checkEligibility bool = true
param statusFirstCheckSeconds int
param statusMaxIntervalSeconds int
param statusMaxTrackingHours int
param partnerCenterTimeoutSeconds int
param partnerCenterBatchCallsPerMinute int
param consentCheckSchedule string
param callerTenantId string
param callerApiAudience string
param auditRetentionDays int

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// Every setting the app reads (shared/settings.py SETTINGS, plus the identity-based AzureWebJobsStorage
// suffixes) and the platform settings the host, the Python worker and azure-identity read.
// tests/test_infra.py compares this object with shared/settings.py: wire every new setting here.
var appSettings = {
  // Host storage and the app's own queue/table clients, identity-based (no connection string).
  AzureWebJobsStorage__blobServiceUri: blobEndpoint
  AzureWebJobsStorage__queueServiceUri: queueEndpoint
  AzureWebJobsStorage__tableServiceUri: tableEndpoint
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  // DefaultAzureCredential (Key Vault, storage SDK clients) picks the user-assigned identity.
  AZURE_CLIENT_ID: identityClientId
  // Telemetry: Entra-authenticated ingestion; the Python worker exports through OpenTelemetry
  // (host.json "telemetryMode": "OpenTelemetry").
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: 'true'
  // The app's contract (docs/design.md "Settings").
  KEY_VAULT_URL: keyVaultUri
  PARTNER_TENANT_ID: partnerTenantId
  PARTNER_CENTER_BASE_URL: partnerCenterBaseUrl
  AZURE_AUTHORITY_HOST: authorityHost
  PARTNER_CENTER_APP_ID_SECRET: 'partner-center-app-id'
  PARTNER_CENTER_APP_SECRET_SECRET: 'partner-center-app-secret'
  PARTNER_CENTER_REFRESH_TOKEN_SECRET: refreshTokenSecretName
  CALLBACK_SIGNING_KEY_SECRET: 'callback-signing-key'
  STATUS_LINK_KEY_SECRET: 'status-link-signing-key'
  UPGRADE_STATUS_QUEUE: statusQueueName
  UPGRADE_BATCH_QUEUE: batchQueueName
  UPGRADES_TABLE: upgradesTableName
  CHECK_ELIGIBILITY: checkEligibility ? 'true' : 'false'
  STATUS_FIRST_CHECK_SECONDS: string(statusFirstCheckSeconds)
  STATUS_MAX_INTERVAL_SECONDS: string(statusMaxIntervalSeconds)
  STATUS_MAX_TRACKING_HOURS: string(statusMaxTrackingHours)
  PARTNER_CENTER_TIMEOUT_SECONDS: string(partnerCenterTimeoutSeconds)
  PARTNER_CENTER_BATCH_CALLS_PER_MINUTE: string(partnerCenterBatchCallsPerMinute)
  CONSENT_CHECK_SCHEDULE: consentCheckSchedule
  IDEMPOTENCY_CLAIM_LEASE_SECONDS: '120'
  // Callers (docs/deploy.md, "Callers"): whose tokens, for which API registration; caller keys; the audit trail.
  CALLER_TENANT_ID: callerTenantId
  CALLER_API_AUDIENCE: callerApiAudience
  CALLER_KEY_SECRET_PREFIX: 'caller-key-'
  AUDIT_RETENTION_DAYS: string(auditRetentionDays)
  // Location headers and follow links are never built from a request's Host header in Azure: the partner's
  // API Management / Front Door address when given, else the site's own default host name (read from the site,
  // not composed from its name: a unique default host name carries a hash and a region).
  PUBLIC_BASE_URL: empty(publicBaseUrl) ? 'https://${functionApp.properties.defaultHostName}' : publicBaseUrl
}

// Settings the app treats as unset when missing: set only when the partner chose a value.
var optionalAppSettings = empty(callbackAllowedHosts) ? {} : { CALLBACK_ALLOWED_HOSTS: callbackAllowedHosts }

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
  // checkov:skip=CKV_AZURE_225: zone redundancy for Flex Consumption exists only in some regions and fails the deployment elsewhere; storage is zone-redundant by default (storage.bicep), set properties.zoneRedundant here where the chosen region offers it.
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': serviceName })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      http20Enabled: true
      remoteDebuggingEnabled: false
      // checkov:skip=CKV_AZURE_78: no ftpsState, Flex Consumption sites refuse it (ARM error 51021); FTP is off through the ftp basicPublishingCredentialsPolicy below.
      // No appSettings here: they are the sites/config 'appsettings' below (they hold runtime values).
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${blobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.13'
      }
    }
  }
  // checkov:skip=CKV_AZURE_222: public HTTP API by design: Power Automate flows, CRM webhooks and partner services call it; every route is authLevel function (key) and HTTPS-only.
  // checkov:skip=CKV_AZURE_17: callers (Power Automate HTTP action, webhooks) authenticate with function keys and cannot present client certificates.
  // checkov:skip=CKV_AZURE_213: GET /api/health needs a function key, which App Service health checks cannot send, and Flex Consumption scales to zero; alerts.bicep watches health instead.
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales from zero by design; add always-ready instances (functionAppConfig.scaleAndConcurrency.alwaysReady) if cold starts matter.
}

// The app settings, as Microsoft's Flex Consumption quickstart sets them: one sites/config 'appsettings'
// resource holding the whole object. A resource property may hold runtime values (the Application Insights
// connection string, the site's own host name); a for-loop over them would not compile (BCP178).
// This is the only source of app settings: a PUT of 'appsettings' replaces every setting the site has.
resource appSettingsConfig 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov reads every sites/config as the 'web' config (logging, auth, runtime versions); this one is 'appsettings', the environment variables, so these checks do not apply to it:
  // checkov:skip=CKV_AZURE_63: not the web config; Flex Consumption has no App Service HTTP logs, every request is in Application Insights (requests table).
  // checkov:skip=CKV_AZURE_65: not the web config; failures are traced in Application Insights, and error bodies are problem+json without internals by contract.
  // checkov:skip=CKV_AZURE_66: not the web config; failed requests are in Application Insights (requests table, resultCode) and raise the 5xx alert (alerts.bicep).
  // checkov:skip=CKV_AZURE_13: not the web config; callers authenticate with function keys (authLevel function) or signed follow links, App Service Authentication would lock out Power Automate polls.
  // checkov:skip=CKV_AZURE_80: not the web config; a Python app, and Flex Consumption refuses netFrameworkVersion (ARM error 51021): the runtime is functionAppConfig.runtime.
  // checkov:skip=CKV_AZURE_88: not the web config; Flex Consumption mounts no Azure Files share, the package comes from the blob deployment container.
  // checkov:skip=CKV_AZURE_222: not the web config; public network access is decided on the site, see its CKV_AZURE_222 skip.
  parent: functionApp
  name: 'appsettings'
  properties: union(appSettings, optionalAppSettings)
}

// Publishing with FTP or basic-auth SCM credentials is off; azd deploys with an Entra token.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = functionApp.name
output defaultHostName string = functionApp.properties.defaultHostName
output uri string = 'https://${functionApp.properties.defaultHostName}'
output apiBaseUrl string = 'https://${functionApp.properties.defaultHostName}/api'
