"""The audit trail of what callers changed and who was refused (docs/design.md, "Callers, roles and audit")."""
