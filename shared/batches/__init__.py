"""Batches: report on, or upgrade, many customers (or all of them) through the batch queue (docs/design.md,
"Batches").

    model       batch and customer-row shapes, outcomes, the batch resource and its URLs
    validation  the POST /api/batches body and the customers-route filters
    store       batch entity + one row per customer in one Table partition (ETag, entity-group transactions)
    links       which batches wait on an upgrade (so tracking can settle their rows when it is final)
    messages    the batch queue's message kinds and sending them
    pacing      the shared hold after a 429 and the shared, adaptive pace of batch calls
    outcomes    one customer's work: eligibility, or the create path, turned into an outcome
    worker      handling one batch-queue message
    completion  finishing a batch once and sending its one callback
    service     starting a batch (Idempotency-Key, rows, first message) and reading it
    export      the customers as CSV
"""
