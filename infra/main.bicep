// Partner Center Upgrade Functions: everything azd provisions, composed by concern.
//   identity.bicep    the app's user-assigned managed identity
//   storage.bicep     host storage, deployment container, status queue (+ poison), upgrades table
//   keyvault.bicep    SAM credentials vault (RBAC, soft delete, purge protection)
//   monitoring.bicep  Log Analytics + Application Insights (Entra-only ingestion)
//   rbac.bicep        data-plane roles for the identity (and Secrets Officer for the deploying principal)
//   alerts.bicep      action group + log alerts: consent/MFA, poison messages, 5xx rate (README runbook)
//   app.bicep         Flex Consumption plan + function app (Python 3.13) + app settings
// No connection strings, keys or secrets: every connection is the managed identity + RBAC.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; part of every resource name (AZURE_ENV_NAME).')
param environmentName string

@minLength(1)
@description('Region for all resources; must offer Flex Consumption (az functionapp list-flexconsumption-locations).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Optional resource group name; default rg-<environmentName>.')
param resourceGroupName string = ''

@description('Object id of the deploying user or CI principal (AZURE_PRINCIPAL_ID); granted Key Vault Secrets Officer so the consent tool can store the SAM secrets. Empty = no grant.')
param principalId string = ''

@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
@description('Type of principalId (AZURE_PRINCIPAL_TYPE).')
param principalType string = 'User'

@description('Set to true (REFRESH_TOKEN_SECRET_EXISTS) after the consent tool has stored the refresh token: the app\'s Key Vault write role is then scoped to that one secret instead of the whole vault. See docs/deploy.md.')
param refreshTokenSecretExists bool = false

// ---- what a partner chooses
@minLength(1)
@description('The partner\'s Entra tenant: GUID or domain (PARTNER_TENANT_ID).')
param partnerTenantId string

@description('Tenant whose Entra tokens callers present (CALLER_TENANT_ID). Empty = the partner tenant.')
param callerTenantId string = ''

@minLength(1)
@description('The app\'s API registration: its client id, the `aud` of callers\' v2 tokens (CALLER_API_AUDIENCE). infra/register_api.sh creates it.')
param callerApiAudience string

@minValue(1)
@maxValue(3650)
@description('Days audit entries are kept (AUDIT_RETENTION_DAYS).')
param auditRetentionDays int = 400

@description('Partner Center REST root. Change only for a national cloud.')
param partnerCenterBaseUrl string = 'https://api.partnercenter.microsoft.com'

@description('Entra authority host; defaults to the login endpoint of the cloud this deploys to (https://login.microsoftonline.com/ in Azure public cloud).')
param authorityHost string = environment().authentication.loginEndpoint

@description('External base URL for Location headers when the app is behind API Management / Front Door. Empty = https://<the function app\'s default host name>.')
param publicBaseUrl string = ''

@description('Comma-separated host names (exact, or *.suffix; host:port when not 443) a callbackUrl may target. Empty = unset (callbacks off).')
param callbackAllowedHosts string = ''

@description('Run the Partner Center eligibility check before creating an upgrade.')
param checkEligibility bool = true

@minValue(1)
@maxValue(86400)
@description('Seconds before the first status check.')
param statusFirstCheckSeconds int = 60

@minValue(1)
@maxValue(86400)
@description('Longest interval between status checks (seconds).')
param statusMaxIntervalSeconds int = 900

@minValue(1)
@maxValue(2160)
@description('Hours an upgrade is tracked before it is TimedOut.')
param statusMaxTrackingHours int = 72

@minValue(1)
@maxValue(120)
@description('Read timeout of one Partner Center attempt (seconds).')
param partnerCenterTimeoutSeconds int = 30

@minValue(1)
@maxValue(60000)
@description('Ceiling on batch calls to Partner Center per minute, all instances together.')
param partnerCenterBatchCallsPerMinute int = 300

@description('NCRONTAB (UTC, six fields: second minute hour day month day-of-week) of the daily consent keep-alive. Empty = the contract default.')
param consentCheckSchedule string = ''

// ---- alerts
@description('E-mail address for the alerts\' action group (ALERT_EMAIL). Empty = no receiver; add one in the portal.')
param alertEmail string = ''

// ---- sizing
@minValue(1)
@maxValue(1000)
@description('Flex Consumption scale-out limit.')
param maximumInstanceCount int = 40

@allowed([
  512
  2048
  4096
])
@description('Flex Consumption instance memory (MB).')
param instanceMemoryMB int = 2048

@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
@description('Storage replication; Standard_LRS for regions without availability zones.')
param storageSkuName string = 'Standard_ZRS'

@minValue(7)
@maxValue(90)
@description('Key Vault soft-delete retention (days). The vault is purge-protected: after azd down it stays recoverable this long.')
param keyVaultSoftDeleteRetentionInDays int = 90

var abbrs = loadJsonContent('abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = '${abbrs.webSitesFunctions}api-${resourceToken}'
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}-${take(toLower(uniqueString(functionAppName, resourceToken)), 7)}'
// Names from the contract (docs/design.md): shared/settings.py defaults, and the host's <queue>-poison.
var statusQueueName = 'upgrade-status'
var batchQueueName = 'upgrade-batch'
var refreshTokenSecretName = 'partner-center-refresh-token'
// The parameters file passes CONSENT_CHECK_SCHEDULE with an empty default (a default with spaces and `*` in azd's
// ${VAR=default} syntax is fragile), so the contract default lives here.
var defaultConsentCheckSchedule = '0 30 3 * * *'
var upgradesTableName = 'upgrades'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

module identity 'identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}api-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    skuName: storageSkuName
    deploymentContainerName: deploymentContainerName
    statusQueueName: statusQueueName
    batchQueueName: batchQueueName
    upgradesTableName: upgradesTableName
  }
}

module keyVault 'keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: '${abbrs.keyVaultVaults}${resourceToken}'
    location: location
    tags: tags
    softDeleteRetentionInDays: keyVaultSoftDeleteRetentionInDays
  }
}

module monitoring 'monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    applicationInsightsName: '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
  }
}

module rbac 'rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    identityPrincipalId: identity.outputs.principalId
    principalId: principalId
    principalType: principalType
    refreshTokenSecretName: refreshTokenSecretName
    refreshTokenSecretExists: refreshTokenSecretExists
  }
}

module app 'app.bicep' = {
  name: 'app'
  scope: rg
  params: {
    name: functionAppName
    planName: '${abbrs.webServerFarms}${resourceToken}'
    location: location
    tags: tags
    serviceName: 'api'
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    blobEndpoint: storage.outputs.blobEndpoint
    queueEndpoint: storage.outputs.queueEndpoint
    tableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: storage.outputs.deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    keyVaultUri: keyVault.outputs.uri
    statusQueueName: storage.outputs.statusQueueName
    batchQueueName: storage.outputs.batchQueueName
    upgradesTableName: storage.outputs.upgradesTableName
    refreshTokenSecretName: refreshTokenSecretName
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    partnerTenantId: partnerTenantId
    partnerCenterBaseUrl: partnerCenterBaseUrl
    authorityHost: authorityHost
    publicBaseUrl: publicBaseUrl
    callbackAllowedHosts: callbackAllowedHosts
    checkEligibility: checkEligibility
    statusFirstCheckSeconds: statusFirstCheckSeconds
    statusMaxIntervalSeconds: statusMaxIntervalSeconds
    statusMaxTrackingHours: statusMaxTrackingHours
    partnerCenterTimeoutSeconds: partnerCenterTimeoutSeconds
    partnerCenterBatchCallsPerMinute: partnerCenterBatchCallsPerMinute
    consentCheckSchedule: empty(consentCheckSchedule) ? defaultConsentCheckSchedule : consentCheckSchedule
    callerTenantId: empty(callerTenantId) ? partnerTenantId : callerTenantId
    callerApiAudience: callerApiAudience
    auditRetentionDays: auditRetentionDays
  }
  // The identity must hold its storage roles before the app reads its deployment container and starts.
  dependsOn: [
    rbac
  ]
}

module alerts 'alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    namePrefix: 'alert-${resourceToken}'
    location: location
    tags: tags
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    alertEmail: alertEmail
  }
}

// azd stores these in .azure/<env>/.env (and hooks see them as environment variables).
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output SERVICE_API_NAME string = app.outputs.name
output AZURE_FUNCTION_APP_NAME string = app.outputs.name
output AZURE_FUNCTION_APP_HOST string = app.outputs.defaultHostName
output AZURE_FUNCTION_API_BASE_URL string = app.outputs.apiBaseUrl
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_ENDPOINT string = keyVault.outputs.uri
output AZURE_KEY_VAULT_ID string = keyVault.outputs.id
output AZURE_FUNCTION_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AZURE_FUNCTION_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_APPLICATION_INSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output AZURE_ALERTS_ACTION_GROUP_NAME string = alerts.outputs.actionGroupName
