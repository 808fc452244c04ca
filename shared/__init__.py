"""The app's library; the function folders are thin entry points into `shared.api`.

Layers, each importing only those below it (docs/design.md, "Layout"):
    api/             HTTP and queue adapters, caller-input validation, problem+json
    upgrades/create  the create use case          tracking/   policy, state machine, queue and read paths
    partner_center/  REST client, SAM tokens      storage/    table records, idempotency, status queue
    upgrades/model   record, states, resource     key_vault, dependency_errors
    settings, services, errors, clock, correlation
"""
