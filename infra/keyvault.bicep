// Key Vault holding the Secure Application Model credentials (app id, app secret, refresh token) and the
// callback signing key. Access is Azure RBAC only (no access policies); roles are granted in rbac.bicep.
// Secrets are not created here: the consent tool writes them (make consent ARGS="--vault <name> ...").

@description('Globally unique vault name (3-24 characters).')
@minLength(3)
@maxLength(24)
param name string

param location string
param tags object = {}

@description('Days a deleted vault or secret stays recoverable. Purge protection keeps it for this long, even from azd down --purge.')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 90

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
  // checkov:skip=CKV_AZURE_109: the callers are a Flex Consumption app without VNet integration (no fixed outbound IPs; App Service is not a trusted service for Key Vault data access) and the operator's machine running the consent tool, so a Deny default would lock both out. Every request needs an Entra token and an RBAC role on this vault.
  // checkov:skip=CKV_AZURE_189: same reason as CKV_AZURE_109; close the public path with VNet integration + a private endpoint where the partner's network allows it.
}

output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
