"""Who is calling: Entra access tokens and named caller keys (docs/design.md, "Callers, roles and audit")."""
