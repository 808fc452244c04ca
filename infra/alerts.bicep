// Azure Monitor alerts (docs/design.md "Consent keep-alive, health and alerts"): one action group and three log search
// alert rules on the Application Insights data (traces, requests). The log lines they match are fixed by the app:
//   consent / MFA  an ERROR trace "... problemType=urn:partner-center-upgrade:problem:<slug>" whose slug ends in
//                  consent-required or mfa-required (KeepConsentAlive daily, and any request Entra refuses)
//   poison         the Functions host's "Message has reached MaxDequeueCount of N. Moving message to queue
//                  '<queue>-poison'." and the app's ERROR "... moving it to the poison queue" (contract breakers)
//   5xx rate       requests with resultCode >= 500 above 5 % of all requests over 15 minutes
// README.md "Alerts and runbook" says what each alert means and what the operator does.

param location string
param tags object = {}

@description('Prefix of the action group and alert rule names.')
param namePrefix string

param applicationInsightsName string

@description('E-mail address the action group notifies. Empty = an action group without receivers (add SMS, Teams or ITSM receivers in the portal).')
param alertEmail string = ''

@minValue(1)
@description('Fewest requests in 15 minutes before the 5xx rate can alert, so 1 failure out of 2 requests pages nobody.')
param minimumRequestsForErrorRate int = 20

@minValue(1)
@maxValue(100)
@description('5xx share of all requests (percent) above which the error-rate alert fires.')
param serverErrorPercentThreshold int = 5

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

var operatorEmail = [
  {
    name: 'operator-email'
    emailAddress: alertEmail
    useCommonAlertSchema: true
  }
]

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: '${namePrefix}-operators'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'pcu-ops'
    enabled: true
    emailReceivers: empty(alertEmail) ? [] : operatorEmail
  }
}

// KQL is case-sensitive in `matches regex` and case-insensitive in `contains`; severityLevel 3 = Error, 4 = Critical.
var consentQuery = '''
traces
| where severityLevel >= 3
| where message matches regex @"problemType=urn:partner-center-upgrade:problem:[a-z0-9-]*(consent|mfa)-required([^a-z0-9-]|$)"
| extend problemType = extract(@"problemType=urn:partner-center-upgrade:problem:([a-z0-9-]+)", 1, message)
| project timestamp, problemType, message
'''

var poisonQuery = '''
traces
| where message matches regex @"Message has reached MaxDequeueCount of [0-9]+\. Moving message to queue '[^']+-poison'"
    or (severityLevel >= 3 and message contains "moving it to the poison queue")
| extend queue = extract(@"Moving message to queue '([^']+)'", 1, message)
| project timestamp, queue, severityLevel, message
'''

// One row (the window's rate) only when there were enough requests; no row = no alert.
var serverErrorRateLines = [
  'requests'
  '| summarize total = count(), failed = countif(toint(resultCode) >= 500)'
  '| where total >= ${minimumRequestsForErrorRate}'
  '| extend failedPercent = 100.0 * failed / total'
]
var serverErrorRateQuery = join(serverErrorRateLines, '\n')

resource consentAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-consent-or-mfa'
  location: location
  tags: tags
  properties: {
    displayName: 'Partner Center consent or MFA problem'
    description: 'The SAM refresh token was refused (consent-required) or the token does not prove MFA (mfa-required). Runbook: README.md, "Alerts and runbook".'
    severity: 1
    enabled: true
    scopes: [
      applicationInsights.id
    ]
    evaluationFrequency: 'PT15M'
    // Twice the frequency, so a line ingested late is still seen; muteActionsDuration keeps that from paging twice.
    windowSize: 'PT30M'
    criteria: {
      allOf: [
        {
          query: consentQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            {
              name: 'problemType'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    muteActionsDuration: 'PT6H'
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

resource poisonAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-poison-message'
  location: location
  tags: tags
  properties: {
    displayName: 'Message moved to a poison queue'
    description: 'A queue message failed maxDequeueCount times, or broke the queue contract, and was moved to <queue>-poison. Runbook: README.md, "Alerts and runbook".'
    severity: 2
    enabled: true
    scopes: [
      applicationInsights.id
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT30M'
    criteria: {
      allOf: [
        {
          query: poisonQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            {
              name: 'queue'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    muteActionsDuration: 'PT1H'
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

resource serverErrorRateAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-5xx-rate'
  location: location
  tags: tags
  properties: {
    displayName: 'HTTP 5xx rate above ${serverErrorPercentThreshold} % over 15 minutes'
    description: 'More than ${serverErrorPercentThreshold} % of all requests in 15 minutes answered 5xx (at least ${minimumRequestsForErrorRate} requests). Runbook: README.md, "Alerts and runbook".'
    severity: 1
    enabled: true
    scopes: [
      applicationInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: serverErrorRateQuery
          timeAggregation: 'Average'
          metricMeasureColumn: 'failedPercent'
          operator: 'GreaterThan'
          threshold: serverErrorPercentThreshold
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

output actionGroupId string = actionGroup.id
output actionGroupName string = actionGroup.name
