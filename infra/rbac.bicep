// Every data-plane role the app needs, granted to its user-assigned identity, plus Key Vault Secrets
// Officer for the deploying principal (azd's AZURE_PRINCIPAL_ID) so the consent tool can store the secrets.
// Key Vault, least privilege: the app reads every SAM secret (Secrets User on the vault) and writes only the
// refresh token. Its write role (Secrets Officer) is scoped to that one secret once the secret exists; a
// role assignment needs an existing scope, and declaring the secret here would overwrite the real token with a
// placeholder on every deployment. So the first deployment (before the consent tool has stored the token)
// grants the write role on the vault, and docs/deploy.md ("Least privilege after consent") narrows it.
// Names are guid(scope.id, principalId, roleDefinitionId): stable across re-deployments, unique per grant.

param storageAccountName string
param keyVaultName string
param applicationInsightsName string

@description('Principal (object) id of the app\'s user-assigned managed identity.')
param identityPrincipalId string

@description('Optional: object id of the deploying user or CI principal. Empty = no grant.')
param principalId string = ''

@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param principalType string = 'User'

@description('Name of the refresh-token secret (PARTNER_CENTER_REFRESH_TOKEN_SECRET), the only secret the app writes.')
param refreshTokenSecretName string

@description('true once the consent tool has stored the refresh token: the app\'s write role is then scoped to that secret instead of the vault. Deployment fails if it is true and the secret does not exist.')
param refreshTokenSecretExists bool = false

// Built-in role definition ids (identical in every tenant and cloud).
var storageBlobDataOwner = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b')
var storageQueueDataContributor = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '974c5e8b-45b9-4653-ba55-5f855dd0fb88')
var storageTableDataContributor = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3')
var monitoringMetricsPublisher = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '3913510d-42f4-4e42-8a64-420c390055eb')
var keyVaultSecretsOfficer = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7')
var keyVaultSecretsUser = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '4633458b-17de-408a-b874-0445c86b69e6')

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

// Only referenced (never created or updated here): the consent tool writes its value.
resource refreshTokenSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = {
  parent: vault
  name: refreshTokenSecretName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// Host storage (leases, function keys, timers) and the Flex Consumption deployment container.
resource identityBlobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identityPrincipalId, storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: storageBlobDataOwner
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Queue trigger, poison queue, and the app's delayed re-check messages.
resource identityQueueDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identityPrincipalId, storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: storageQueueDataContributor
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Status records and idempotency keys.
resource identityTableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identityPrincipalId, storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: storageTableDataContributor
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Entra-authenticated telemetry ingestion (the component has local auth disabled).
resource identityMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, identityPrincipalId, monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    roleDefinitionId: monitoringMetricsPublisher
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Read the SAM credentials, the callback and follow-link keys.
resource identitySecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, identityPrincipalId, keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: keyVaultSecretsUser
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Write the rotated refresh token back (a new secret version): on that one secret once it exists ...
resource identityRefreshTokenOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (refreshTokenSecretExists) {
  name: guid(refreshTokenSecret.id, identityPrincipalId, keyVaultSecretsOfficer)
  scope: refreshTokenSecret
  properties: {
    roleDefinitionId: keyVaultSecretsOfficer
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// ... and on the vault until then. Incremental deployments do not delete this grant when the flag turns true:
// docs/deploy.md ("Least privilege after consent") removes it.
resource identitySecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!refreshTokenSecretExists) {
  name: guid(vault.id, identityPrincipalId, keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: keyVaultSecretsOfficer
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The consent tool runs as the operator and stores app id, app secret and refresh token in the vault.
resource principalSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(principalId)) {
  name: guid(vault.id, principalId, keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: keyVaultSecretsOfficer
    principalId: principalId
    principalType: principalType
  }
}
