"""The app's library; the function folders are thin entry points into `shared.api`.

Each layer imports only those below it. The contract is `[tool.importlinter]` in pyproject.toml, checked by
`make lint` (lint-imports); docs/design.md "Layout" says what each layer holds and "Follow one request" walks a
request through them:
    api/                         HTTP, queue and timer adapters, caller input, callers and roles, problem+json
    services, auth.wiring        the per-process collaborators (the composition root)
    batches/ consent/ upgrades/  the use cases (create, list, eligibility; batches and campaigns; consent)
    tracking/                    policy, the tracker's sequence, the queue and read paths, callbacks
    partner_center/ storage/ auth.tokens auth.caller_keys audit/   the outside services
    upgrades.model .resource .accepted                              the upgrade record and its wire shapes
    key_vault, dependency_errors
    settings, callback_urls, errors, clock, correlation, concurrency, outbound_http, whole_number
"""
