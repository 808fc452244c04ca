// Storage account for the Functions host (AzureWebJobsStorage, identity-based), the Flex Consumption
// deployment package, the status-check and batch queues (each with its poison queue) and the upgrades table.
// No keys: shared-key access is disabled, every client (host, app, azd) authenticates with Entra ID.

@description('Globally unique storage account name (3-24 lowercase letters and digits).')
@minLength(3)
@maxLength(24)
param name string

param location string
param tags object = {}

@description('Replication. ZRS survives a zone outage; use Standard_LRS in a region without availability zones.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param skuName string = 'Standard_ZRS'

@description('Blob container the Flex Consumption app is deployed from.')
param deploymentContainerName string

@description('Status-check queue (UPGRADE_STATUS_QUEUE). Its poison queue is <name>-poison.')
param statusQueueName string

@description('Batch work queue (UPGRADE_BATCH_QUEUE). Its poison queue is <name>-poison.')
param batchQueueName string

@description('Status records and idempotency keys (UPGRADES_TABLE).')
param upgradesTableName string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    dnsEndpointType: 'Standard'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
  // checkov:skip=CKV_AZURE_35: Flex Consumption without VNet integration has no fixed outbound addresses, so a Deny default would lock out the app itself; access is Entra-only (shared keys off) and RBAC-scoped. Add VNet integration + private endpoints to close the network path.
  // checkov:skip=CKV_AZURE_206: ZRS (default) survives a zone outage, the failure a single-region app survives too; geo-replication would keep copies of status records that Partner Center can re-derive, for a function app that does not fail over. Choose a GZRS SKU with storageSkuName if policy requires it.
  // checkov:skip=CKV_AZURE_59: same reason as CKV_AZURE_35: the app (no VNet) and azd (deploying user) reach the account over public endpoints; every request needs an Entra token.
}

resource blobServices 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobServices
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueServices 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource statusQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueServices
  name: statusQueueName
}

// The host moves a message here after host.json maxDequeueCount failed attempts; created up front so an
// operator can inspect and re-queue poison messages before the first one appears.
resource statusPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueServices
  name: '${statusQueueName}-poison'
}

resource batchQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueServices
  name: batchQueueName
}

// Same as the status poison queue: the host moves a batch message here after maxDequeueCount failed attempts,
// and the app sends a message that breaks the queue contract here at once.
resource batchPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueServices
  name: '${batchQueueName}-poison'
}

resource tableServices 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource upgradesTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableServices
  name: upgradesTableName
}

output name string = storage.name
output id string = storage.id
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
output deploymentContainerName string = deploymentContainer.name
output statusQueueName string = statusQueue.name
output statusPoisonQueueName string = statusPoisonQueue.name
output batchQueueName string = batchQueue.name
output batchPoisonQueueName string = batchPoisonQueue.name
output upgradesTableName string = upgradesTable.name
