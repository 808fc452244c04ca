// The one user-assigned managed identity the function app uses for everything: host storage
// (AzureWebJobsStorage__credential), the deployment container, the app's queue/table clients and Key Vault
// (AZURE_CLIENT_ID for DefaultAzureCredential), and Application Insights ingestion.

param name string
param location string
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
