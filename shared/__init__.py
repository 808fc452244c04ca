"""The app's library; the function folders are thin entry points into `shared.api`.

Layers, each importing only those below it (docs/design.md, "Layout"):
    api/             HTTP, queue and timer adapters, caller-input validation, problem+json
    batches/ consent/ upgrades/ (create, list, eligibility)      the use cases
    tracking/        policy, state machine, queue and read paths, callbacks
    partner_center/  REST client, SAM tokens      storage/    table records, idempotency, queues
    upgrades/model, resource, accepted   record, states, resource, answer   key_vault, dependency_errors
    settings, services, errors, clock, correlation, concurrency, outbound_http, whole_number
"""
