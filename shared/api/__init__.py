"""The edges: HTTP and queue adapters (parse, call the domain, shape the answer), caller-input validation and
problem+json answers. Nothing below `shared/api` imports it.

Cold start: a function's `main` imports one adapter module here on its first call, and at module level these
import only light modules (settings, errors, validation, the record model; no Azure SDK, no `requests`). What
pulls in an SDK (the tracker, the list, eligibility, keep-alive, storage exceptions) is imported inside the
handler that needs it, and the SDK clients themselves are built by `shared/services.py`, so the first request
pays only for what it uses (docs/design.md, "Performance")."""
