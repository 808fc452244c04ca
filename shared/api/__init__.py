"""The edges: HTTP and queue adapters (parse, call the domain, shape the answer), caller-input validation and
problem+json answers. Nothing below `shared/api` imports it."""
