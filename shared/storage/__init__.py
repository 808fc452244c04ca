"""Azure Storage: client factories, the upgrade-record table, Idempotency-Key claims and the status queue."""
