#!/usr/bin/env bash
# The app's API registration in Entra ID, with its app roles, and role assignments for callers.
# Bicep's Microsoft Graph extension would do this declaratively, but the project's offline Bicep checker has no
# Microsoft.Graph types, so this script (az CLI, signed in as someone who may create app registrations) does it.
#
#   infra/register_api.sh create <display name>              # prints CALLER_API_AUDIENCE (the client id)
#   infra/register_api.sh assign <api client id> <principal object id> <role> [<role> ...]
#       e.g. a managed identity: assign "$CALLER_API_AUDIENCE" "$(az identity show -n id-crm -g rg --query principalId -o tsv)" Upgrades.Create
#
# docs/deploy.md, "Callers", walks through it; `azd env set CALLER_API_AUDIENCE <client id>` before `azd up`.
set -euo pipefail

ROLES=(Upgrades.Read Upgrades.Create Batches.Report Batches.Upgrade Operations.Read)
declare -A DESCRIPTIONS=(
  [Upgrades.Read]="Read upgrade status, lists, eligibility and batches"
  [Upgrades.Create]="Upgrade one customer (POST /api/upgrades)"
  [Batches.Report]="Start report batches"
  [Batches.Upgrade]="Start and cancel upgrade batches"
  [Operations.Read]="Read health and the audit trail"
)

role_id() { python3 -c "import uuid,sys; print(uuid.uuid5(uuid.NAMESPACE_URL, 'partner-center-upgrade:' + sys.argv[1]))" "$1"; }

app_roles_json() {
  local first=1
  printf '['
  for role in "${ROLES[@]}"; do
    [[ $first == 1 ]] || printf ','
    first=0
    printf '{"allowedMemberTypes":["Application","User"],"description":"%s","displayName":"%s","id":"%s","isEnabled":true,"value":"%s"}' \
      "${DESCRIPTIONS[$role]}" "$role" "$(role_id "$role")" "$role"
  done
  printf ']'
}

case "${1:-}" in
  create)
    name="${2:?display name}"
    roles_file="$(mktemp)"
    app_roles_json >"$roles_file"
    client_id="$(az ad app create --display-name "$name" --sign-in-audience AzureADMyOrg \
      --app-roles "@$roles_file" --query appId -o tsv)"
    rm -f "$roles_file"
    az ad app update --id "$client_id" --identifier-uris "api://$client_id" \
      --set api.requestedAccessTokenVersion=2
    az ad sp create --id "$client_id" >/dev/null
    echo "CALLER_API_AUDIENCE=$client_id"
    ;;
  assign)
    api="${2:?api client id}" principal="${3:?principal object id}"
    shift 3
    sp="$(az ad sp show --id "$api" --query id -o tsv)"
    for role in "$@"; do
      az rest --method POST --uri "https://graph.microsoft.com/v1.0/servicePrincipals/$sp/appRoleAssignedTo" \
        --body "{\"principalId\":\"$principal\",\"resourceId\":\"$sp\",\"appRoleId\":\"$(role_id "$role")\"}" >/dev/null
      echo "assigned $role to $principal"
    done
    ;;
  *)
    sed -n '2,10p' "$0"
    exit 2
    ;;
esac
